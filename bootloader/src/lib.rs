//! Boot entries as pure functions: BLS type-1 entry files, kernel
//! command lines, and systemd's boot-counting file names. No I/O: callers
//! read and write files through directory handles.
//!
//! ```
//! use bootloader::{BlsEntry, EntryName, SortEntry, counting};
//!
//! // An entry as `ostree admin deploy` writes it.
//! let text = "title Sample Photon 2.0 (ostree:0)\nversion 2\n\
//!             options root=LABEL=root quiet ostree=/ostree/boot.1/sample/\
//!             c7ed75e837255175cd215f2166ee652fdd4b3eb269cc13826d39a77e988530e4/0\n\
//!             linux /ostree/sample-c7ed75e837255175cd215f2166ee652fdd4b3eb269cc13826d39a77e988530e4/vmlinuz-6.1.0\n";
//! let mut entry = BlsEntry::parse(text)?;
//! assert_eq!(entry.to_string(), text);
//!
//! // Edit the kernel command line.
//! let mut kargs = entry.options()?;
//! assert_eq!(kargs.ostree_bootlink()?.map(|l| l.bootserial()), Some(0));
//! kargs.append("console=ttyS0")?;
//! entry.set_options(&kargs)?;
//!
//! // Give the entry three boot attempts, then follow systemd-boot and systemd-bless-boot.
//! let name = EntryName::new("ostree-2-sample", Some(counting::Counter::new(3, None)?))?;
//! assert_eq!(name.file_name(), "ostree-2-sample+3.conf");
//! let booted = name.decrement().expect("counted entries are renamed before boot");
//! assert_eq!(booted.file_name(), "ostree-2-sample+2-1.conf");
//! assert_eq!(booted.bless()?.file_name(), "ostree-2-sample.conf");
//!
//! // The menu order: the counted new entry first, the older good one after it.
//! let old = BlsEntry::parse("title Sample Photon 1.0 (ostree:1)\nversion 1\nlinux /k\n")?;
//! let mut menu = [SortEntry::from_bls("ostree-1-sample.conf", &old), SortEntry::from_bls(booted.file_name(), &entry)];
//! counting::sort(&mut menu);
//! assert_eq!(menu[0].file_name, "ostree-2-sample+2-1.conf");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules:
//! - [`bls`]: parse and write `loader/entries/*.conf`, and build the entry OSTree writes for a
//!   deployment;
//! - [`kargs`]: kernel command lines and the `ostree=` boot link;
//! - [`counting`]: `NAME+LEFT-DONE.conf` boot counting and systemd-boot's menu order;
//! - [`vercmp`]: the version order systemd-boot sorts with;
//! - [`grub`] and [`grubenv`]: the GRUB backend's generated `grub.cfg`, its boot counter, and
//!   GRUB's 1024-byte environment block.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bls;
pub mod counting;
pub mod grub;
pub mod grubenv;
pub mod kargs;
pub mod vercmp;

pub use bls::BlsEntry;
pub use counting::{BootState, Counter, EntryName, SortEntry};
pub use kargs::{Karg, Kargs, OstreeBootlink};
