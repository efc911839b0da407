//! File-type and permission bits (POSIX values, as stored in objects).

/// Mask of the file-type bits.
pub const S_IFMT: u32 = 0o170000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// Permission bits plus setuid, setgid and sticky.
pub const PERM_MASK: u32 = 0o7777;

/// True for a directory mode.
pub fn is_dir(mode: u32) -> bool {
    mode & S_IFMT == S_IFDIR
}
/// True for a regular-file mode.
pub fn is_reg(mode: u32) -> bool {
    mode & S_IFMT == S_IFREG
}
/// True for a symlink mode.
pub fn is_symlink(mode: u32) -> bool {
    mode & S_IFMT == S_IFLNK
}

/// Checks a content object's mode as OSTree's
/// `ostree_validate_structureof_file_mode` does: a regular file or symlink,
/// and no bits besides the type, permissions, setuid, setgid and sticky.
pub fn validate_file_mode(mode: u32) -> Result<(), &'static str> {
    if !(is_reg(mode) || is_symlink(mode)) {
        return Err("not a regular file or symlink");
    }
    if mode & !(S_IFMT | PERM_MASK) != 0 {
        return Err("unknown bits set");
    }
    Ok(())
}

/// Checks a directory's mode (OSTree's `ostree_validate_structureof_dirmeta`).
pub fn validate_dir_mode(mode: u32) -> Result<(), &'static str> {
    if !is_dir(mode) {
        return Err("not a directory");
    }
    if mode & !(S_IFMT | PERM_MASK) != 0 {
        return Err("unknown bits set");
    }
    Ok(())
}
