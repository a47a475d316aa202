//! Shared by the benches that report a ratio against a baseline measured in the same run
//! (`crates/core/benches/kdf.rs`, `crates/keystore/benches/secure_environment.rs`, included
//! with `#[path]`): subject and baseline alternate batch by batch, so machine noise affects
//! both alike.

use std::time::Instant;

/// Median time per call of each `f`, in ns, over `ROUNDS` batches of `batch` calls, the
/// functions interleaved batch by batch.
pub fn interleaved(batch: u32, fs: &[&dyn Fn()]) -> Vec<f64> {
    const ROUNDS: usize = 15;
    let mut samples = vec![Vec::new(); fs.len()];
    for _ in 0..ROUNDS {
        for (f, s) in fs.iter().zip(samples.iter_mut()) {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            s.push(t.elapsed().as_nanos() as f64 / f64::from(batch));
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            s[ROUNDS / 2]
        })
        .collect()
}
