//! Snapshot files: `"ENSS" | crc32 of the body (u32) | body`, the body being
//! [`crate::tree::snapshot::snapshot`]'s bytes, named `snapshot.<last zxid>`.
//!
//! Contract: [`write`] is atomic (a reader sees the old set of snapshots or the new
//! one, never half a file); [`load_newest`] returns the newest snapshot whose
//! checksum, tree and zxid all check out, skipping damaged ones with a warning.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::{numbered_files, numbered_name, sync_dir, StorageError};
use crate::tree::snapshot::restore;
use crate::tree::{DataTree, TreeOptions};

pub const PREFIX: &str = "snapshot";
const MAGIC: [u8; 4] = *b"ENSS";
const HEADER_LEN: usize = 8;

pub fn write(dir: &Path, zxid: i64, body: &[u8]) -> io::Result<()> {
    let name = numbered_name(PREFIX, zxid);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    file.write_all(&MAGIC)?;
    file.write_all(&crc32fast::hash(body).to_be_bytes())?;
    file.write_all(body)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Checks and restores one snapshot file's bytes.
fn read(bytes: &[u8], zxid: i64, options: TreeOptions) -> Result<DataTree, String> {
    if bytes.len() < HEADER_LEN || bytes[..4] != MAGIC {
        return Err("not a snapshot file".into());
    }
    let crc = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let body = &bytes[HEADER_LEN..];
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".into());
    }
    let tree = restore(body, options).map_err(|e| e.to_string())?;
    if tree.last_zxid() != zxid {
        return Err(format!(
            "holds zxid 0x{:x}, its name says 0x{zxid:x}",
            tree.last_zxid()
        ));
    }
    Ok(tree)
}

pub fn load_newest(
    dir: &Path,
    options: TreeOptions,
) -> Result<Option<(DataTree, i64)>, StorageError> {
    let mut snapshots = numbered_files(dir, PREFIX).map_err(|e| StorageError::io(dir, e))?;
    snapshots.sort_unstable_by(|a, b| b.cmp(a));
    for (zxid, path) in snapshots {
        let bytes = fs::read(&path).map_err(|e| StorageError::io(dir, e))?;
        match read(&bytes, zxid, options) {
            Ok(tree) => return Ok(Some((tree, zxid))),
            Err(reason) => {
                tracing::warn!(file = %path.display(), %reason, "skipping a damaged snapshot");
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::snapshot::snapshot;

    #[test]
    fn a_damaged_newest_snapshot_falls_back_to_the_previous_one() {
        let dir = crate::storage::wal::tests::tempdir("snap");
        let tree = DataTree::new(TreeOptions::default());
        let body = snapshot(&tree);
        write(&dir, 0, &body).unwrap();
        // A newer one whose body was damaged after writing.
        let newer = dir.join(numbered_name(PREFIX, 5));
        write(&dir, 5, &body).unwrap();
        let mut bytes = fs::read(&newer).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&newer, bytes).unwrap();
        let (loaded, zxid) = load_newest(&dir, TreeOptions::default())
            .unwrap()
            .expect("the older one is intact");
        assert_eq!(zxid, 0);
        assert_eq!(snapshot(&loaded), body);
    }

    #[test]
    fn a_snapshot_must_hold_the_zxid_its_name_says() {
        let body = snapshot(&DataTree::new(TreeOptions::default()));
        let mut bytes = MAGIC.to_vec();
        bytes.extend(crc32fast::hash(&body).to_be_bytes());
        bytes.extend(&body);
        assert!(read(&bytes, 0, TreeOptions::default()).is_ok());
        assert!(read(&bytes, 7, TreeOptions::default())
            .unwrap_err()
            .contains("name says"));
    }
}
