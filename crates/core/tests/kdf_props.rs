//! Property tests for the KDF inputs: NFKC equivalence and independence of every input.

use m2msec_core::kdf::{self, KdfIdentifier};
use m2msec_core::secret::Ke;
use proptest::prelude::*;
use unicode_normalization::UnicodeNormalization;

/// ASCII letters and digits mapped to their fullwidth compatibility forms (U+FF01..U+FF5E).
fn fullwidth(s: &str) -> String {
    s.chars()
        .map(|c| {
            if ('!'..='~').contains(&c) {
                char::from_u32(c as u32 + 0xFEE0).unwrap()
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn fullwidth_and_normal_forms_derive_the_same_keys(s in "[A-Za-z0-9/._-]{1,40}", k in any::<[u8; 32]>()) {
        let ke = Ke::from_array(k);
        let a = KdfIdentifier::new(&s).unwrap();
        let b = KdfIdentifier::new(&fullwidth(&s)).unwrap();
        prop_assert_eq!(kdf::km(&ke, &a), kdf::km(&ke, &b));
        prop_assert_eq!(kdf::kpsa(&ke, &a), kdf::kpsa(&ke, &b));
    }

    #[test]
    fn any_text_equals_its_nfkc_form(s in "\\PC{1,30}", k in any::<[u8; 32]>()) {
        let ke = Ke::from_array(k);
        if let (Ok(a), Ok(b)) = (KdfIdentifier::new(&s), KdfIdentifier::new(&s.nfkc().collect::<String>())) {
            prop_assert_eq!(kdf::kpsa(&ke, &a), kdf::kpsa(&ke, &b));
        }
    }

    #[test]
    fn different_ids_or_keys_give_different_keys(a in "[a-z0-9]{1,20}", b in "[a-z0-9]{1,20}", k1 in any::<[u8; 32]>(), k2 in any::<[u8; 32]>()) {
        let (ia, ib) = (KdfIdentifier::new(&a).unwrap(), KdfIdentifier::new(&b).unwrap());
        let (ke1, ke2) = (Ke::from_array(k1), Ke::from_array(k2));
        prop_assert_eq!(a == b, kdf::kpsa(&ke1, &ia) == kdf::kpsa(&ke1, &ib));
        prop_assert_eq!(k1 == k2, kdf::km(&ke1, &ia) == kdf::km(&ke2, &ia));
        // Km and Kpsa use different labels: never equal for the same inputs.
        let (km, kpsa) = (kdf::km(&ke1, &ia), kdf::kpsa(&ke1, &ia));
        prop_assert_ne!(&km.expose_secret()[..], kpsa.expose_secret());
    }
}
