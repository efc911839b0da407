//! `DirTree::from_bytes`: no panic, an accepted tree is in normal form, and
//! `DirTree::new` and `lookup` agree with the parsed entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_format::DirTree;
use repo_format::dirtree::Entry;

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = DirTree::from_bytes(data) else { return };
    let bytes = tree.to_bytes();
    assert_eq!(bytes, data, "re-encoding an accepted dirtree changed its bytes");
    assert_eq!(DirTree::from_bytes(&bytes).as_ref(), Ok(&tree), "re-parse differs");
    assert_eq!(DirTree::new(tree.files().to_vec(), tree.dirs().to_vec()).as_ref(), Ok(&tree));
    for f in tree.files() {
        assert!(matches!(tree.lookup(f.name.as_str()), Some(Entry::File(e)) if e == f));
    }
    for d in tree.dirs() {
        assert!(matches!(tree.lookup(d.name.as_str()), Some(Entry::Dir(e)) if e == d));
    }
});
