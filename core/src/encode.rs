//! Bitcoin's consensus encoding: little-endian integers, CompactSize lengths, and the
//! [`Encodable`]/[`Decodable`] traits every wire type implements.
//!
//! Consensus bytes never go through serde. Decoding is strict: CompactSize must be minimal,
//! lengths are capped before anything is allocated, and [`deserialize`] fails unless every byte
//! of its input was consumed.

use std::io::{self, Read, Write};

/// Largest length prefix we accept for any vector (Bitcoin Core's `MAX_SIZE`, 32 MiB).
pub const MAX_VEC_SIZE: u64 = 0x0200_0000;

/// Most bytes a decoder reserves ahead of reading; longer vectors grow as their bytes arrive, so
/// a lying length prefix cannot make us allocate memory the input does not back.
const MAX_PREALLOC_BYTES: usize = 64 * 1024;

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reader failed or ran out of bytes.
    #[error("i/o error while decoding: {0}")]
    Io(#[from] io::Error),
    /// A CompactSize used more bytes than its value needs.
    #[error("non-minimal compact size encoding")]
    NonMinimalCompactSize,
    /// A length prefix is larger than any valid object.
    #[error("length {0} exceeds the maximum of {MAX_VEC_SIZE}")]
    OversizedVec(u64),
    /// `deserialize` was given more bytes than the object uses.
    #[error("{0} trailing bytes after the object")]
    TrailingBytes(usize),
    /// A field holds a value the format does not allow.
    #[error("invalid data: {0}")]
    Invalid(&'static str),
}

/// A type with a consensus (wire and hashing) serialization.
pub trait Encodable {
    /// Writes the consensus encoding to `w` and returns the number of bytes written.
    fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<usize>;
}

/// A type that can be read back from its consensus serialization.
pub trait Decodable: Sized {
    /// Reads one object from `r`.
    fn consensus_decode<R: Read + ?Sized>(r: &mut R) -> Result<Self, Error>;
}

/// Encodes `value` into a new byte vector.
pub fn serialize<T: Encodable + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value
        .consensus_encode(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

/// Decodes a `T` from exactly `bytes`; trailing bytes are an error.
pub fn deserialize<T: Decodable>(bytes: &[u8]) -> Result<T, Error> {
    let mut reader = bytes;
    let value = T::consensus_decode(&mut reader)?;
    if reader.is_empty() {
        Ok(value)
    } else {
        Err(Error::TrailingBytes(reader.len()))
    }
}

/// Decodes a `T` from `bytes`, returning it and how many bytes it used.
pub fn deserialize_partial<T: Decodable>(bytes: &[u8]) -> Result<(T, usize), Error> {
    let mut reader = bytes;
    let value = T::consensus_decode(&mut reader)?;
    Ok((value, bytes.len() - reader.len()))
}

/// A Bitcoin CompactSize ("varint") length or count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CompactSize(pub u64);

impl CompactSize {
    /// Number of bytes the encoding of `n` takes.
    pub fn encoded_len(n: u64) -> usize {
        match n {
            0..=0xfc => 1,
            0xfd..=0xffff => 3,
            0x1_0000..=0xffff_ffff => 5,
            _ => 9,
        }
    }
}

impl Encodable for CompactSize {
    fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<usize> {
        let n = self.0;
        match n {
            0..=0xfc => w.write_all(&[n as u8]).map(|_| 1),
            0xfd..=0xffff => {
                w.write_all(&[0xfd])?;
                w.write_all(&(n as u16).to_le_bytes())?;
                Ok(3)
            }
            0x1_0000..=0xffff_ffff => {
                w.write_all(&[0xfe])?;
                w.write_all(&(n as u32).to_le_bytes())?;
                Ok(5)
            }
            _ => {
                w.write_all(&[0xff])?;
                w.write_all(&n.to_le_bytes())?;
                Ok(9)
            }
        }
    }
}

impl Decodable for CompactSize {
    fn consensus_decode<R: Read + ?Sized>(r: &mut R) -> Result<Self, Error> {
        let first = u8::consensus_decode(r)?;
        let (value, min) = match first {
            0xff => (u64::consensus_decode(r)?, 0x1_0000_0000),
            0xfe => (u64::from(u32::consensus_decode(r)?), 0x1_0000),
            0xfd => (u64::from(u16::consensus_decode(r)?), 0xfd),
            n => return Ok(CompactSize(u64::from(n))),
        };
        if value < min {
            return Err(Error::NonMinimalCompactSize);
        }
        Ok(CompactSize(value))
    }
}

/// Reads a CompactSize length and checks it against [`MAX_VEC_SIZE`].
pub fn read_len<R: Read + ?Sized>(r: &mut R) -> Result<usize, Error> {
    let CompactSize(len) = CompactSize::consensus_decode(r)?;
    if len > MAX_VEC_SIZE {
        return Err(Error::OversizedVec(len));
    }
    Ok(len as usize)
}

macro_rules! impl_int_encoding {
    ($($ty:ty),*) => {$(
        impl Encodable for $ty {
            fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<usize> {
                w.write_all(&self.to_le_bytes())?;
                Ok(std::mem::size_of::<$ty>())
            }
        }

        impl Decodable for $ty {
            fn consensus_decode<R: Read + ?Sized>(r: &mut R) -> Result<Self, Error> {
                let mut buf = [0u8; std::mem::size_of::<$ty>()];
                r.read_exact(&mut buf)?;
                Ok(<$ty>::from_le_bytes(buf))
            }
        }
    )*};
}
impl_int_encoding!(u8, u16, u32, u64, i32, i64);

impl Encodable for bool {
    fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<usize> {
        u8::from(*self).consensus_encode(w)
    }
}

impl Decodable for bool {
    fn consensus_decode<R: Read + ?Sized>(r: &mut R) -> Result<Self, Error> {
        Ok(u8::consensus_decode(r)? != 0)
    }
}

impl<const N: usize> Encodable for [u8; N] {
    fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<usize> {
        w.write_all(self)?;
        Ok(N)
    }
}

impl<const N: usize> Decodable for [u8; N] {
    fn consensus_decode<R: Read + ?Sized>(r: &mut R) -> Result<Self, Error> {
        let mut buf = [0u8; N];
        r.read_exact(&mut buf)?;
        Ok(buf)
    }
}

/// Writes `bytes` with a CompactSize length prefix.
pub fn write_bytes<W: Write + ?Sized>(w: &mut W, bytes: &[u8]) -> io::Result<usize> {
    let len = CompactSize(bytes.len() as u64).consensus_encode(w)?;
    w.write_all(bytes)?;
    Ok(len + bytes.len())
}

/// Reads a CompactSize-prefixed byte string, growing the buffer only as bytes arrive.
pub fn read_bytes<R: Read + ?Sized>(r: &mut R) -> Result<Vec<u8>, Error> {
    let len = read_len(r)?;
    let mut out = Vec::with_capacity(len.min(MAX_PREALLOC_BYTES));
    let read = r.take(len as u64).read_to_end(&mut out)?;
    if read != len {
        return Err(Error::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(out)
}

impl<T: Encodable> Encodable for Vec<T> {
    fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<usize> {
        let mut len = CompactSize(self.len() as u64).consensus_encode(w)?;
        for item in self {
            len += item.consensus_encode(w)?;
        }
        Ok(len)
    }
}

impl<T: Decodable> Decodable for Vec<T> {
    fn consensus_decode<R: Read + ?Sized>(r: &mut R) -> Result<Self, Error> {
        let len = read_len(r)?;
        let cap = len.min(MAX_PREALLOC_BYTES / std::mem::size_of::<T>().max(1));
        let mut out = Vec::with_capacity(cap);
        for _ in 0..len {
            out.push(T::consensus_decode(r)?);
        }
        Ok(out)
    }
}

/// Implements [`Encodable`] and [`Decodable`] for a struct by encoding its fields in order.
macro_rules! impl_consensus_encoding {
    ($ty:ident, $($field:ident),+ $(,)?) => {
        impl $crate::encode::Encodable for $ty {
            fn consensus_encode<W: std::io::Write + ?Sized>(
                &self,
                w: &mut W,
            ) -> std::io::Result<usize> {
                let mut len = 0;
                $(len += self.$field.consensus_encode(w)?;)+
                Ok(len)
            }
        }

        impl $crate::encode::Decodable for $ty {
            fn consensus_decode<R: std::io::Read + ?Sized>(
                r: &mut R,
            ) -> Result<Self, $crate::encode::Error> {
                Ok($ty {
                    $($field: $crate::encode::Decodable::consensus_decode(r)?,)+
                })
            }
        }
    };
}
pub(crate) use impl_consensus_encoding;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compact_size_boundaries() {
        for (n, hex) in [
            (0u64, "00"),
            (0xfc, "fc"),
            (0xfd, "fdfd00"),
            (0xffff, "fdffff"),
            (0x1_0000, "fe00000100"),
            (0xffff_ffff, "feffffffff"),
            (0x1_0000_0000, "ff0000000001000000"),
        ] {
            let bytes = serialize(&CompactSize(n));
            assert_eq!(hex::encode(&bytes), hex);
            assert_eq!(bytes.len(), CompactSize::encoded_len(n));
            assert_eq!(deserialize::<CompactSize>(&bytes).unwrap(), CompactSize(n));
        }
    }

    #[test]
    fn non_minimal_compact_size_is_rejected() {
        for hex in ["fd0000", "fdfc00", "feffff0000", "ffffffffff00000000"] {
            let bytes = hex::decode(hex).unwrap();
            assert!(matches!(
                deserialize::<CompactSize>(&bytes),
                Err(Error::NonMinimalCompactSize)
            ));
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        assert!(matches!(
            deserialize::<u32>(&[1, 0, 0, 0, 9]),
            Err(Error::TrailingBytes(1))
        ));
    }

    #[test]
    fn huge_length_prefix_fails_without_allocating() {
        // Claims 32 MiB of items but carries none: must fail with EOF, not allocate or panic.
        let bytes = hex::decode("fe00000002").unwrap();
        assert!(deserialize::<Vec<u64>>(&bytes).is_err());
        assert!(read_bytes(&mut &bytes[..]).is_err());
        let over = hex::decode("fe01000002").unwrap();
        assert!(matches!(
            deserialize::<Vec<u8>>(&over),
            Err(Error::OversizedVec(_))
        ));
    }

    proptest! {
        #[test]
        fn compact_size_round_trips(n in any::<u64>()) {
            let bytes = serialize(&CompactSize(n));
            prop_assert_eq!(deserialize::<CompactSize>(&bytes).unwrap(), CompactSize(n));
        }

        #[test]
        fn byte_strings_round_trip(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut buf = Vec::new();
            write_bytes(&mut buf, &data).unwrap();
            prop_assert_eq!(read_bytes(&mut &buf[..]).unwrap(), data);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = deserialize::<CompactSize>(&data);
            let _ = deserialize::<Vec<u32>>(&data);
        }
    }
}
