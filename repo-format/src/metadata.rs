//! `a{sv}` dictionaries: commit metadata, detached metadata (signatures),
//! summary metadata (SPEC.md §3.4).
//!
//! Keys keep the order they were read in, because OSTree writes them in hash
//! order and the object's checksum covers the bytes. Repeated keys are
//! refused: two values for `ostree.sign.ed25519` would let a reader and a
//! verifier see different things.

use gvariant::{Marker, SerializeTo, Structure, gv};

use crate::Error;
use crate::variant::{self, Dyn, Type};
use gvariant::aligned_bytes::AsAligned;

use crate::gv::{aligned, c_str, check_normal_form, is_valid_type_string};

/// One variant value: its GVariant type string and its serialized bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Value {
    type_str: String,
    data: Vec<u8>,
}

macro_rules! roundtrip {
    ($ty:literal, $data:expr, $get:expr, $got:ident => $put:expr) => {{
        let buf = aligned("variant", $data).ok()?;
        let v = gv!($ty).cast(buf.as_aligned());
        let $got = $get(v);
        let again = gv!($ty).serialize_to_vec($put);
        (again == *$data).then_some($got)
    }};
}

impl Value {
    fn with(type_str: &str, data: Vec<u8>) -> Self {
        Self { type_str: type_str.to_owned(), data }
    }
    /// A raw value: `data` must be a normal-form value of `type_str`.
    pub fn from_parts(type_str: &str, data: Vec<u8>) -> Option<Self> {
        variant::is_normal_form(type_str.as_bytes(), &data).then(|| Self::with(type_str, data))
    }
    /// A string, `s`.
    pub fn new_str(s: &str) -> Self {
        Self::with("s", gv!("s").serialize_to_vec(c_str(s)))
    }
    /// A string list, `as`.
    pub fn new_strs<S: AsRef<str>>(items: &[S]) -> Self {
        let v: Vec<&str> = items.iter().map(|s| c_str(s.as_ref())).collect();
        Self::with("as", gv!("as").serialize_to_vec(&v))
    }
    /// A boolean, `b`.
    pub fn new_bool(b: bool) -> Self {
        Self::with("b", gv!("b").serialize_to_vec(&b))
    }
    /// A `t` stored as given (call `to_be()` first for OSTree's big-endian fields).
    pub fn new_u64(raw: u64) -> Self {
        Self::with("t", gv!("t").serialize_to_vec(raw))
    }
    /// A byte string, `ay`.
    pub fn new_bytes(b: &[u8]) -> Self {
        Self::with("ay", gv!("ay").serialize_to_vec(b))
    }
    /// A list of byte strings, `aay` (signatures).
    pub fn new_byte_arrays<B: AsRef<[u8]>>(items: &[B]) -> Self {
        Self::with("aay", gv!("aay").serialize_to_vec(items.iter().map(AsRef::as_ref)))
    }
    /// A nested dictionary, `a{sv}`.
    pub fn new_dict(m: &Metadata) -> Self {
        Self::with("a{sv}", m.to_bytes())
    }
    /// The GVariant type string.
    pub fn type_str(&self) -> &str {
        &self.type_str
    }
    /// The serialized bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// The string, if this is a well-formed `s`.
    pub fn as_str(&self) -> Option<String> {
        if self.type_str != "s" {
            return None;
        }
        roundtrip!("s", &self.data, |v: &gvariant::Str| v.to_str().to_owned(), got => c_str(&got))
    }
    /// The strings, if this is a well-formed `as`.
    pub fn as_strs(&self) -> Option<Vec<String>> {
        if self.type_str != "as" {
            return None;
        }
        roundtrip!(
            "as",
            &self.data,
            |v: &gvariant::NonFixedWidthArray<gvariant::Str>| v
                .iter()
                .map(|s| s.to_str().to_owned())
                .collect::<Vec<_>>(),
            got => got.iter().map(|s| c_str(s))
        )
    }
    /// The boolean, if this is a well-formed `b`.
    pub fn as_bool(&self) -> Option<bool> {
        if self.type_str != "b" {
            return None;
        }
        roundtrip!("b", &self.data, |v: &gvariant::Bool| v.to_bool(), got => &got)
    }
    /// The raw `t` as framed, if this is a well-formed `t`.
    pub fn as_u64(&self) -> Option<u64> {
        if self.type_str != "t" {
            return None;
        }
        roundtrip!("t", &self.data, |v: &u64| *v, got => got)
    }
    /// The bytes, if this is a well-formed `ay`.
    pub fn as_bytes(&self) -> Option<Vec<u8>> {
        if self.type_str != "ay" {
            return None;
        }
        roundtrip!("ay", &self.data, |v: &[u8]| v.to_vec(), got => got.as_slice())
    }
    /// The byte strings, if this is a well-formed `aay`.
    pub fn as_byte_arrays(&self) -> Option<Vec<Vec<u8>>> {
        if self.type_str != "aay" {
            return None;
        }
        roundtrip!(
            "aay",
            &self.data,
            |v: &gvariant::NonFixedWidthArray<[u8]>| v.iter().map(<[u8]>::to_vec).collect::<Vec<_>>(),
            got => got.iter().map(Vec::as_slice)
        )
    }
    /// The dictionary, if this is a well-formed `a{sv}`.
    pub fn as_dict(&self) -> Option<Metadata> {
        if self.type_str != "a{sv}" {
            return None;
        }
        Metadata::from_bytes(&self.data).ok()
    }

    /// The value decoded whatever its type, with the type; `None` if the
    /// bytes are not a normal-form value of the type.
    pub fn decode(&self) -> Option<(Type, Dyn)> {
        let ty = Type::parse(self.type_str.as_bytes())?;
        let v = variant::decode(&ty, &self.data)?;
        (variant::encode(&ty, &v)? == self.data).then_some((ty, v))
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.decode() {
            Some((_, v)) => write!(f, "{}", variant::to_text(&v)),
            None => write!(f, "<malformed {} {} bytes>", self.type_str, self.data.len()),
        }
    }
}

impl SerializeTo<gvariant::Variant> for &Value {
    fn serialize(self, f: &mut impl std::io::Write) -> std::io::Result<usize> {
        f.write_all(&self.data)?;
        f.write_all(b"\0")?;
        f.write_all(self.type_str.as_bytes())?;
        Ok(self.data.len() + 1 + self.type_str.len())
    }
}

/// An `a{sv}` dictionary in the order it was read or built.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.entries.iter().map(|(k, v)| (k, v))).finish()
    }
}

impl Metadata {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses an `a{sv}`, refusing repeated keys, invalid type strings and
    /// anything not in normal form.
    pub fn from_bytes(data: &[u8]) -> Result<Self, Error> {
        Self::from_bytes_as("metadata", data)
    }

    /// As [`Metadata::from_bytes`], naming `object` in errors.
    pub fn from_bytes_as(object: &'static str, data: &[u8]) -> Result<Self, Error> {
        let buf = aligned(object, data)?;
        let dict = gv!("a{sv}").cast(buf.as_aligned());
        let md = Self::from_entries(dict.iter().map(|e| e.to_tuple()))?;
        check_normal_form(object, data, &md.to_bytes())?;
        Ok(md)
    }

    /// Collects decoded dictionary entries, checking keys and type strings;
    /// the caller checks normal form of the enclosing bytes.
    pub(crate) fn from_entries<'a>(
        items: impl Iterator<Item = (&'a gvariant::Str, &'a gvariant::Variant)>,
    ) -> Result<Self, Error> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        for (key, variant) in items {
            let (type_str, vdata) = variant.split();
            let key = key.to_str().to_owned();
            if !is_valid_type_string(type_str) {
                return Err(Error::TypeString { key, found: String::from_utf8_lossy(type_str).into_owned() });
            }
            if key.is_empty() {
                return Err(Error::EmptyKey);
            }
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(Error::DuplicateKey { key });
            }
            // OSTree checks whole commits with g_variant_is_normal_form, values
            // included; the enclosing check cannot see inside a variant.
            if !variant::is_normal_form(type_str, vdata) {
                return Err(Error::MetadataValue { key, type_str: String::from_utf8_lossy(type_str).into_owned() });
            }
            // Valid type strings are ASCII.
            let type_str = String::from_utf8_lossy(type_str).into_owned();
            entries.push((key, Value { type_str, data: vdata.to_vec() }));
        }
        Ok(Self { entries })
    }

    /// Serializes to `a{sv}` normal form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let items: Vec<(&str, &Value)> = self.entries.iter().map(|(k, v)| (c_str(k), v)).collect();
        gv!("a{sv}").serialize_to_vec(&items)
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, replacing an existing value in place.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(pos).1)
    }

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn typed<T>(
        &self,
        key: &str,
        expected: &'static str,
        get: impl FnOnce(&Value) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        get(v).map(Some).ok_or_else(|| Error::MetadataType { key: key.to_owned(), expected, found: v.type_str.clone() })
    }

    /// A string value; an error if the key holds anything but a well-formed `s`.
    pub fn get_str(&self, key: &str) -> Result<Option<String>, Error> {
        self.typed(key, "s", Value::as_str)
    }
    /// A string-list value.
    pub fn get_strs(&self, key: &str) -> Result<Option<Vec<String>>, Error> {
        self.typed(key, "as", Value::as_strs)
    }
    /// A `t` value converted from OSTree's big-endian storage.
    pub fn get_u64_be(&self, key: &str) -> Result<Option<u64>, Error> {
        self.typed(key, "t", |v| v.as_u64().map(u64::from_be))
    }
    /// A boolean value.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, Error> {
        self.typed(key, "b", Value::as_bool)
    }
    /// A byte-string value.
    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.typed(key, "ay", Value::as_bytes)
    }
    /// A list of byte strings (signatures).
    pub fn get_byte_arrays(&self, key: &str) -> Result<Option<Vec<Vec<u8>>>, Error> {
        self.typed(key, "aay", Value::as_byte_arrays)
    }
}

impl<'a> IntoIterator for &'a Metadata {
    type Item = (&'a str, &'a Value);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a Value)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_typed_access() {
        let mut m = Metadata::new();
        m.insert("version", Value::new_str("1.0"));
        m.insert("ostree.ref-binding", Value::new_strs(&["os/x86_64/stable"]));
        m.insert("ts", Value::new_u64(1_600_000_000u64.to_be()));
        m.insert("flag", Value::new_bool(true));
        m.insert("sigs", Value::new_byte_arrays(&[[7u8; 64], [9u8; 64]]));
        let bytes = m.to_bytes();
        let back = Metadata::from_bytes(&bytes).expect("round trip of our own encoding");
        assert_eq!(back, m);
        assert_eq!(back.get_str("version"), Ok(Some("1.0".into())));
        assert_eq!(back.get_u64_be("ts"), Ok(Some(1_600_000_000)));
        assert_eq!(back.get_bool("flag"), Ok(Some(true)));
        assert_eq!(back.get_byte_arrays("sigs").map(|v| v.map(|v| v.len())), Ok(Some(2)));
        assert!(matches!(back.get_str("flag"), Err(Error::MetadataType { .. })));
        assert_eq!(back.get_str("absent"), Ok(None));
    }

    #[test]
    fn refuses_duplicates_and_garbage() {
        // Two identical entries, built by concatenating an encoding by hand.
        let (a, b) = (Value::new_str("a"), Value::new_str("b"));
        let one: Vec<(&str, &Value)> = vec![("k", &a), ("k", &b)];
        let dup = gv!("a{sv}").serialize_to_vec(&one);
        assert_eq!(Metadata::from_bytes(&dup), Err(Error::DuplicateKey { key: "k".into() }));
        let mut m = Metadata::new();
        m.insert("k", Value::new_str("v"));
        let mut bytes = m.to_bytes();
        bytes.push(0);
        let err = Metadata::from_bytes(&bytes);
        assert!(err.is_err(), "{err:?}");
    }
}
