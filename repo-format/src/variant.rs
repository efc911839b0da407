//! GVariant values of any type, decoded at run time (SPEC.md §1, §3).
//!
//! The `gvariant` crate types values at compile time, which covers every
//! object layout but not the values inside `a{sv}` dictionaries, whose types
//! are only known when read (rpm-ostree stores `a(sssss)` package lists
//! there, for instance). OSTree refuses commits whose metadata values are not
//! in normal form, so we must check them too; this module is the small
//! dynamic codec that does it, with the same rule as the rest of the crate:
//! decode, re-encode, compare ([`is_normal_form`]).

use std::fmt::Write as _;

/// Deepest nesting of containers, variants included (GLib's
/// `G_VARIANT_MAX_RECURSION_DEPTH`).
pub const MAX_DEPTH: usize = 128;

/// A GVariant type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// `b`
    Bool,
    /// `y`
    Byte,
    /// `n`
    I16,
    /// `q`
    U16,
    /// `i`
    I32,
    /// `u`
    U32,
    /// `h`
    Handle,
    /// `x`
    I64,
    /// `t`
    U64,
    /// `d`
    Double,
    /// `s`
    Str,
    /// `o`
    ObjectPath,
    /// `g`
    Signature,
    /// `v`
    Variant,
    /// `mT`
    Maybe(Box<Type>),
    /// `aT`
    Array(Box<Type>),
    /// `(T...)`
    Tuple(Vec<Type>),
    /// `{KV}`
    DictEntry(Box<Type>, Box<Type>),
}

impl Type {
    /// Parses exactly one complete type string.
    pub fn parse(s: &[u8]) -> Option<Type> {
        let (t, used) = Self::parse_prefix(s, 0)?;
        (used == s.len()).then_some(t)
    }

    fn parse_prefix(s: &[u8], depth: usize) -> Option<(Type, usize)> {
        if depth > MAX_DEPTH {
            return None;
        }
        let basic = |c: u8| -> Option<Type> {
            Some(match c {
                b'b' => Type::Bool,
                b'y' => Type::Byte,
                b'n' => Type::I16,
                b'q' => Type::U16,
                b'i' => Type::I32,
                b'u' => Type::U32,
                b'h' => Type::Handle,
                b'x' => Type::I64,
                b't' => Type::U64,
                b'd' => Type::Double,
                b's' => Type::Str,
                b'o' => Type::ObjectPath,
                b'g' => Type::Signature,
                _ => return None,
            })
        };
        let c = *s.first()?;
        if let Some(t) = basic(c) {
            return Some((t, 1));
        }
        match c {
            b'v' => Some((Type::Variant, 1)),
            b'm' => Self::parse_prefix(&s[1..], depth + 1).map(|(t, n)| (Type::Maybe(Box::new(t)), n + 1)),
            b'a' => Self::parse_prefix(&s[1..], depth + 1).map(|(t, n)| (Type::Array(Box::new(t)), n + 1)),
            b'(' => {
                let mut pos = 1;
                let mut members = Vec::new();
                loop {
                    if *s.get(pos)? == b')' {
                        return Some((Type::Tuple(members), pos + 1));
                    }
                    let (t, n) = Self::parse_prefix(&s[pos..], depth + 1)?;
                    members.push(t);
                    pos += n;
                }
            }
            b'{' => {
                let key = basic(*s.get(1)?)?;
                let (value, n) = Self::parse_prefix(&s[2..], depth + 1)?;
                (*s.get(2 + n)? == b'}').then(|| (Type::DictEntry(Box::new(key), Box::new(value)), 3 + n))
            }
            _ => None,
        }
    }

    /// The type string.
    pub fn to_type_string(&self) -> String {
        let mut s = String::new();
        self.write_to(&mut s);
        s
    }

    fn write_to(&self, s: &mut String) {
        let c = match self {
            Type::Bool => 'b',
            Type::Byte => 'y',
            Type::I16 => 'n',
            Type::U16 => 'q',
            Type::I32 => 'i',
            Type::U32 => 'u',
            Type::Handle => 'h',
            Type::I64 => 'x',
            Type::U64 => 't',
            Type::Double => 'd',
            Type::Str => 's',
            Type::ObjectPath => 'o',
            Type::Signature => 'g',
            Type::Variant => 'v',
            Type::Maybe(t) => {
                s.push('m');
                return t.write_to(s);
            }
            Type::Array(t) => {
                s.push('a');
                return t.write_to(s);
            }
            Type::Tuple(ts) => {
                s.push('(');
                ts.iter().for_each(|t| t.write_to(s));
                s.push(')');
                return;
            }
            Type::DictEntry(k, v) => {
                s.push('{');
                k.write_to(s);
                v.write_to(s);
                s.push('}');
                return;
            }
        };
        s.push(c);
    }

    /// Alignment in bytes.
    pub fn alignment(&self) -> usize {
        match self {
            Type::Bool | Type::Byte | Type::Str | Type::ObjectPath | Type::Signature => 1,
            Type::I16 | Type::U16 => 2,
            Type::I32 | Type::U32 | Type::Handle => 4,
            Type::I64 | Type::U64 | Type::Double | Type::Variant => 8,
            Type::Maybe(t) | Type::Array(t) => t.alignment(),
            Type::Tuple(ts) => ts.iter().map(Type::alignment).max().unwrap_or(1),
            Type::DictEntry(k, v) => k.alignment().max(v.alignment()),
        }
    }

    /// Size in bytes if every value of the type has the same size.
    pub fn fixed_size(&self) -> Option<usize> {
        match self {
            Type::Bool | Type::Byte => Some(1),
            Type::I16 | Type::U16 => Some(2),
            Type::I32 | Type::U32 | Type::Handle => Some(4),
            Type::I64 | Type::U64 | Type::Double => Some(8),
            Type::Str | Type::ObjectPath | Type::Signature | Type::Variant | Type::Maybe(_) | Type::Array(_) => None,
            Type::Tuple(ts) => struct_fixed_size(ts.iter(), self.alignment()),
            Type::DictEntry(k, v) => struct_fixed_size([k.as_ref(), v.as_ref()].into_iter(), self.alignment()),
        }
    }

    fn members(&self) -> Option<Vec<&Type>> {
        match self {
            Type::Tuple(ts) => Some(ts.iter().collect()),
            Type::DictEntry(k, v) => Some(vec![k, v]),
            _ => None,
        }
    }
}

fn struct_fixed_size<'a>(members: impl Iterator<Item = &'a Type>, align: usize) -> Option<usize> {
    let mut size = 0;
    let mut any = false;
    for m in members {
        any = true;
        size = align_up(size, m.alignment()) + m.fixed_size()?;
    }
    // The unit tuple `()` is one zero byte.
    if !any {
        return Some(1);
    }
    Some(align_up(size, align))
}

fn align_up(n: usize, a: usize) -> usize {
    n.div_ceil(a) * a
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Dyn {
    /// `b`
    Bool(bool),
    /// `y`
    Byte(u8),
    /// `n`
    I16(i16),
    /// `q`
    U16(u16),
    /// `i`
    I32(i32),
    /// `u`
    U32(u32),
    /// `h`
    Handle(i32),
    /// `x`
    I64(i64),
    /// `t`
    U64(u64),
    /// `d`
    Double(f64),
    /// `s`, `o` or `g`
    Str(String),
    /// `v`: the contained type and value.
    Variant(Type, Box<Dyn>),
    /// `m`
    Maybe(Option<Box<Dyn>>),
    /// `a`
    Array(Vec<Dyn>),
    /// `(...)` or `{..}`
    Tuple(Vec<Dyn>),
}

/// Bytes per framing offset for a container of `len` bytes.
fn offset_size(len: usize) -> usize {
    match len {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    }
}

fn read_offset(data: &[u8], at: usize, size: usize) -> Option<usize> {
    let b = data.get(at..at + size)?;
    let mut v = [0u8; 8];
    v[..size].copy_from_slice(b);
    usize::try_from(u64::from_le_bytes(v)).ok()
}

/// Decodes `data` as `ty`; `None` if the framing is inconsistent. A value
/// that decodes may still not be in normal form: see [`is_normal_form`].
pub fn decode(ty: &Type, data: &[u8]) -> Option<Dyn> {
    decode_at(ty, data, 0)
}

fn fixed<const N: usize>(data: &[u8]) -> Option<[u8; N]> {
    data.try_into().ok()
}

fn decode_at(ty: &Type, data: &[u8], depth: usize) -> Option<Dyn> {
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match ty {
        Type::Bool => Dyn::Bool(match fixed::<1>(data)?[0] {
            0 => false,
            1 => true,
            _ => return None,
        }),
        Type::Byte => Dyn::Byte(fixed::<1>(data)?[0]),
        Type::I16 => Dyn::I16(i16::from_le_bytes(fixed(data)?)),
        Type::U16 => Dyn::U16(u16::from_le_bytes(fixed(data)?)),
        Type::I32 => Dyn::I32(i32::from_le_bytes(fixed(data)?)),
        Type::U32 => Dyn::U32(u32::from_le_bytes(fixed(data)?)),
        Type::Handle => Dyn::Handle(i32::from_le_bytes(fixed(data)?)),
        Type::I64 => Dyn::I64(i64::from_le_bytes(fixed(data)?)),
        Type::U64 => Dyn::U64(u64::from_le_bytes(fixed(data)?)),
        Type::Double => Dyn::Double(f64::from_le_bytes(fixed(data)?)),
        Type::Str | Type::ObjectPath | Type::Signature => {
            let (last, body) = data.split_last()?;
            if *last != 0 || body.contains(&0) {
                return None;
            }
            Dyn::Str(std::str::from_utf8(body).ok()?.to_owned())
        }
        Type::Variant => {
            let sep = data.iter().rposition(|b| *b == 0)?;
            let child_ty = Type::parse(&data[sep + 1..])?;
            let child = decode_at(&child_ty, &data[..sep], depth + 1)?;
            Dyn::Variant(child_ty, Box::new(child))
        }
        Type::Maybe(t) => {
            if data.is_empty() {
                return Some(Dyn::Maybe(None));
            }
            let child = match t.fixed_size() {
                Some(_) => data,
                None => {
                    let (last, body) = data.split_last()?;
                    if *last != 0 {
                        return None;
                    }
                    body
                }
            };
            Dyn::Maybe(Some(Box::new(decode_at(t, child, depth + 1)?)))
        }
        Type::Array(t) => Dyn::Array(decode_array(t, data, depth)?),
        Type::Tuple(_) | Type::DictEntry(..) => Dyn::Tuple(decode_struct(ty, data, depth)?),
    })
}

fn decode_array(t: &Type, data: &[u8], depth: usize) -> Option<Vec<Dyn>> {
    if data.is_empty() {
        return Some(Vec::new());
    }
    if let Some(k) = t.fixed_size() {
        if !data.len().is_multiple_of(k) {
            return None;
        }
        return data.chunks(k).map(|c| decode_at(t, c, depth + 1)).collect();
    }
    let os = offset_size(data.len());
    let table = read_offset(data, data.len().checked_sub(os)?, os)?;
    let table_len = data.len().checked_sub(table)?;
    if table_len % os != 0 || table_len == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(table_len / os);
    let mut prev_end = 0;
    for i in 0..table_len / os {
        let end = read_offset(data, table + i * os, os)?;
        let start = align_up(prev_end, t.alignment());
        if start > end || end > table {
            return None;
        }
        out.push(decode_at(t, &data[start..end], depth + 1)?);
        prev_end = end;
    }
    Some(out)
}

fn decode_struct(ty: &Type, data: &[u8], depth: usize) -> Option<Vec<Dyn>> {
    let members = ty.members()?;
    if let Some(size) = ty.fixed_size()
        && data.len() != size
    {
        return None;
    }
    let os = offset_size(data.len());
    let mut pos = 0;
    let mut used_offsets = 0;
    let mut out = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        pos = align_up(pos, m.alignment());
        let end = match m.fixed_size() {
            Some(k) => pos + k,
            None if i + 1 == members.len() => data.len().checked_sub(os * used_offsets)?,
            None => {
                used_offsets += 1;
                read_offset(data, data.len().checked_sub(os * used_offsets)?, os)?
            }
        };
        let limit = data.len().checked_sub(os * used_offsets)?;
        if pos > end || end > limit {
            return None;
        }
        out.push(decode_at(m, &data[pos..end], depth + 1)?);
        pos = end;
    }
    if members.is_empty() && data != [0] {
        return None;
    }
    Some(out)
}

/// Encodes a value of type `ty` in normal form; `None` if the value does
/// not have that type.
pub fn encode(ty: &Type, v: &Dyn) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(ty, v, &mut out)?;
    Some(out)
}

fn pad(out: &mut Vec<u8>, align: usize) {
    out.resize(align_up(out.len(), align), 0);
}

fn push_offsets(out: &mut Vec<u8>, offsets: &[usize]) {
    if offsets.is_empty() {
        return;
    }
    // The smallest offset size that can address the whole container, offsets included.
    let body = out.len();
    let os = [1usize, 2, 4, 8].into_iter().find(|s| offset_size(body + offsets.len() * s) <= *s).unwrap_or(8);
    for o in offsets {
        out.extend_from_slice(&(*o as u64).to_le_bytes()[..os]);
    }
}

fn encode_into(ty: &Type, v: &Dyn, out: &mut Vec<u8>) -> Option<()> {
    match (ty, v) {
        (Type::Bool, Dyn::Bool(b)) => out.push(u8::from(*b)),
        (Type::Byte, Dyn::Byte(b)) => out.push(*b),
        (Type::I16, Dyn::I16(n)) => out.extend_from_slice(&n.to_le_bytes()),
        (Type::U16, Dyn::U16(n)) => out.extend_from_slice(&n.to_le_bytes()),
        (Type::I32, Dyn::I32(n)) | (Type::Handle, Dyn::Handle(n)) => out.extend_from_slice(&n.to_le_bytes()),
        (Type::U32, Dyn::U32(n)) => out.extend_from_slice(&n.to_le_bytes()),
        (Type::I64, Dyn::I64(n)) => out.extend_from_slice(&n.to_le_bytes()),
        (Type::U64, Dyn::U64(n)) => out.extend_from_slice(&n.to_le_bytes()),
        (Type::Double, Dyn::Double(n)) => out.extend_from_slice(&n.to_le_bytes()),
        (Type::Str | Type::ObjectPath | Type::Signature, Dyn::Str(s)) => {
            if s.contains('\0') {
                return None;
            }
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        (Type::Variant, Dyn::Variant(t, child)) => {
            let mut c = encode(t, child)?;
            c.push(0);
            c.extend_from_slice(t.to_type_string().as_bytes());
            out.extend_from_slice(&c);
        }
        (Type::Maybe(t), Dyn::Maybe(m)) => {
            if let Some(child) = m {
                encode_into(t, child, out)?;
                if t.fixed_size().is_none() {
                    out.push(0);
                }
            }
        }
        (Type::Array(t), Dyn::Array(items)) => {
            let mut buf = Vec::new();
            let mut offsets = Vec::new();
            for item in items {
                pad(&mut buf, t.alignment());
                encode_into(t, item, &mut buf)?;
                offsets.push(buf.len());
            }
            if t.fixed_size().is_none() {
                push_offsets(&mut buf, &offsets);
            }
            out.extend_from_slice(&buf);
        }
        (Type::Tuple(_) | Type::DictEntry(..), Dyn::Tuple(items)) => {
            let members = ty.members()?;
            if members.len() != items.len() {
                return None;
            }
            let mut buf = Vec::new();
            let mut offsets = Vec::new();
            for (i, (m, item)) in members.iter().zip(items).enumerate() {
                pad(&mut buf, m.alignment());
                encode_into(m, item, &mut buf)?;
                if m.fixed_size().is_none() && i + 1 != members.len() {
                    offsets.push(buf.len());
                }
            }
            if members.is_empty() {
                buf.push(0);
            } else if ty.fixed_size().is_some() {
                pad(&mut buf, ty.alignment());
            }
            offsets.reverse();
            push_offsets(&mut buf, &offsets);
            out.extend_from_slice(&buf);
        }
        _ => return None,
    }
    Some(())
}

/// True if `data` is a value of `type_str` in GVariant normal form.
pub fn is_normal_form(type_str: &[u8], data: &[u8]) -> bool {
    let Some(ty) = Type::parse(type_str) else { return false };
    decode(&ty, data).and_then(|v| encode(&ty, &v)).is_some_and(|again| again == data)
}

/// A compact text form of a value, GVariant-text-like, for display.
pub fn to_text(v: &Dyn) -> String {
    let mut s = String::new();
    write_text(v, &mut s);
    s
}

fn write_text(v: &Dyn, s: &mut String) {
    let _ = match v {
        Dyn::Bool(b) => write!(s, "{b}"),
        Dyn::Byte(b) => write!(s, "0x{b:02x}"),
        Dyn::I16(n) => write!(s, "{n}"),
        Dyn::U16(n) => write!(s, "{n}"),
        Dyn::I32(n) | Dyn::Handle(n) => write!(s, "{n}"),
        Dyn::U32(n) => write!(s, "{n}"),
        Dyn::I64(n) => write!(s, "{n}"),
        Dyn::U64(n) => write!(s, "{n}"),
        Dyn::Double(n) => write!(s, "{n}"),
        Dyn::Str(t) => write!(s, "{t:?}"),
        Dyn::Variant(_, c) => {
            s.push('<');
            write_text(c, s);
            s.push('>');
            Ok(())
        }
        Dyn::Maybe(None) => write!(s, "nothing"),
        Dyn::Maybe(Some(c)) => {
            write_text(c, s);
            Ok(())
        }
        Dyn::Array(items) | Dyn::Tuple(items) => {
            let (open, close) = if matches!(v, Dyn::Array(_)) { ('[', ']') } else { ('(', ')') };
            s.push(open);
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                write_text(it, s);
            }
            s.push(close);
            Ok(())
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use gvariant::{Marker, gv};

    fn t(s: &str) -> Type {
        Type::parse(s.as_bytes()).expect("valid type string")
    }

    /// Our encoder agrees with the `gvariant` crate on values of many shapes.
    #[test]
    fn agrees_with_gvariant_crate() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("s", gv!("s").serialize_to_vec("hello")),
            ("as", gv!("as").serialize_to_vec(["a", "bc", ""])),
            ("ay", gv!("ay").serialize_to_vec(&[1u8, 2, 3][..])),
            ("aay", gv!("aay").serialize_to_vec([&[1u8][..], &[][..], &[7u8; 300][..]])),
            (
                "(uuua(ayay))",
                gv!("(uuua(ayay))").serialize_to_vec(&(1u32, 2u32, 3u32, &[(&b"user.x\0"[..], &b"v"[..])])),
            ),
            ("(sst)", gv!("(sst)").serialize_to_vec(&("a", "bb", 7u64))),
            ("a(sssss)", gv!("a(sssss)").serialize_to_vec(&[("n", "e", "v", "r", "a"), ("x", "y", "z", "w", "q")])),
            ("(yt)", gv!("(yt)").serialize_to_vec(&(1u8, 2u64))),
            ("at", gv!("at").serialize_to_vec(&[1u64, 2][..])),
            ("a{ss}", gv!("a{ss}").serialize_to_vec(&[("k", "v"), ("k2", "v2")])),
            ("()", vec![0]),
        ];
        for (ty, bytes) in cases {
            let parsed = t(ty);
            let v = decode(&parsed, &bytes).unwrap_or_else(|| panic!("{ty} did not decode"));
            assert_eq!(encode(&parsed, &v).as_deref(), Some(bytes.as_slice()), "{ty}");
            assert!(is_normal_form(ty.as_bytes(), &bytes), "{ty}");
        }
    }

    #[test]
    fn refuses_non_normal() {
        let bad: &[(&str, &[u8])] = &[
            ("s", b"ab"),
            ("s", b"a\0b\0"),
            ("u", &[1, 2, 3]),
            ("b", &[2]),
            ("as", &[b'a', 0, 9]),
            ("()", &[]),
            ("ay", &[]),
        ];
        for (ty, data) in bad {
            if *ty == "ay" {
                assert!(is_normal_form(ty.as_bytes(), data), "empty ay is normal");
                continue;
            }
            assert!(!is_normal_form(ty.as_bytes(), data), "{ty} {data:?} accepted");
        }
        // Deep variant nesting from data alone is bounded.
        let mut v = b"x\0\0s".to_vec();
        for _ in 0..200 {
            v.extend_from_slice(b"\0v");
        }
        assert!(!is_normal_form(b"v", &v));
    }
}
