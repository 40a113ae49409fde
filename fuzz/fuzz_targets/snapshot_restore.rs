//! Arbitrary bytes as a snapshot: `restore` must never panic, and a tree it accepts
//! must snapshot to bytes that restore to the same tree and snapshot identically.

#![no_main]

use ensemble_server::tree::snapshot::{restore, snapshot};
use ensemble_server::tree::TreeOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for options in [
        TreeOptions::default(),
        TreeOptions { ttl_enabled: true },
    ] {
        let Ok(tree) = restore(data, options) else {
            continue;
        };
        let bytes = snapshot(&tree);
        let again = restore(&bytes, options).expect("a restored tree's snapshot restores");
        assert_eq!(again, tree);
        assert_eq!(snapshot(&again), bytes);
    }
});
