//! secp256k1 keys (with `k256`), WIF import/export, and the strict signature rules of our
//! consensus: strict DER (BIP66), low S, `SIGHASH_ALL`.

use k256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::address::{base58check_decode, base58check_encode};
use crate::hash::hash160;
use crate::network::Network;
use crate::sighash::SIGHASH_ALL;

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Bad Base58Check text.
    #[error("invalid private key encoding: {0}")]
    Encoding(String),
    /// The WIF version byte is for another network.
    #[error("private key is for another network (version byte {found}, expected {expected})")]
    WrongNetwork {
        /// Version byte found.
        found: u8,
        /// Version byte of the requested network.
        expected: u8,
    },
    /// Only compressed-key WIF (34-byte payload ending in 0x01) is supported.
    #[error("only compressed private keys are supported")]
    Uncompressed,
    /// The scalar is zero or not below the curve order.
    #[error("private key is out of range")]
    OutOfRange,
    /// Not a valid compressed public key.
    #[error("invalid public key: must be a 33-byte compressed point on secp256k1")]
    BadPublicKey,
}

/// Why a signature check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not strict DER as BIP66 defines it.
    #[error("signature is not strict DER")]
    NonStrictDer,
    /// S is above half the curve order.
    #[error("signature S value is high")]
    HighS,
    /// The hash type byte is not `SIGHASH_ALL`.
    #[error("signature hash type must be SIGHASH_ALL")]
    BadHashType,
    /// The public key is not a valid compressed point.
    #[error("invalid public key")]
    BadPublicKey,
    /// The signature does not verify.
    #[error("signature does not verify")]
    Invalid,
}

/// A secp256k1 private key.
#[derive(Clone)]
pub struct PrivateKey(SigningKey);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl PrivateKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> PrivateKey {
        PrivateKey(SigningKey::random(&mut OsRng))
    }

    /// The key with scalar `bytes` (big-endian).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PrivateKey, KeyError> {
        SigningKey::from_slice(bytes)
            .map(PrivateKey)
            .map_err(|_| KeyError::OutOfRange)
    }

    /// The scalar, big-endian.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes().into()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.0.verifying_key())
    }

    /// Wallet Import Format for `network` (compressed).
    pub fn to_wif(&self, network: Network) -> String {
        // The payload holds the secret: wiped when dropped.
        let mut payload = Zeroizing::new(Vec::with_capacity(34));
        payload.push(network.params().wif_version);
        payload.extend_from_slice(&self.to_bytes());
        payload.push(0x01);
        base58check_encode(&payload)
    }

    /// Reads a compressed WIF key for `network`.
    pub fn from_wif(wif: &str, network: Network) -> Result<PrivateKey, KeyError> {
        let payload = Zeroizing::new(
            base58check_decode(wif.trim()).map_err(|e| KeyError::Encoding(e.to_string()))?,
        );
        let expected = network.params().wif_version;
        match payload.as_slice() {
            [version, ..] if *version != expected => Err(KeyError::WrongNetwork {
                found: *version,
                expected,
            }),
            [_, key @ .., 0x01] if key.len() == 32 => {
                let key: &[u8; 32] = key.try_into().map_err(|_| KeyError::OutOfRange)?;
                PrivateKey::from_bytes(key)
            }
            [_, key @ ..] if key.len() == 32 => Err(KeyError::Uncompressed),
            _ => Err(KeyError::Encoding("wrong length".into())),
        }
    }

    /// Signs a 32-byte digest: RFC 6979 deterministic nonce, low S, strict DER, without the hash
    /// type byte.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Vec<u8> {
        let sig: Signature = self
            .0
            .sign_prehash(digest)
            .expect("signing a 32-byte digest cannot fail");
        let sig = sig.normalize_s().unwrap_or(sig);
        sig.to_der().as_bytes().to_vec()
    }
}

/// A compressed secp256k1 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses a 33-byte compressed public key.
    pub fn from_slice(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        if bytes.len() != 33 {
            return Err(KeyError::BadPublicKey);
        }
        VerifyingKey::from_sec1_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::BadPublicKey)
    }

    /// The 33-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; 33] {
        let point = self.0.to_encoded_point(true);
        let mut out = [0u8; 33];
        out.copy_from_slice(point.as_bytes());
        out
    }

    /// HASH160 of the compressed encoding, as committed to by P2PKH.
    pub fn pubkey_hash(&self) -> [u8; 20] {
        hash160(&self.to_bytes())
    }

    /// Verifies a DER signature (no hash type byte) over `digest`, requiring low S.
    pub fn verify_digest(&self, digest: &[u8; 32], der: &[u8]) -> Result<(), SignatureError> {
        let sig = Signature::from_der(der).map_err(|_| SignatureError::NonStrictDer)?;
        if sig.normalize_s().is_some() {
            return Err(SignatureError::HighS);
        }
        self.0
            .verify_prehash(digest, &sig)
            .map_err(|_| SignatureError::Invalid)
    }
}

/// # Consensus
/// Bitcoin's `IsValidSignatureEncoding` (BIP66): `sig_with_hash_type` is a strict DER
/// `SEQUENCE { INTEGER r, INTEGER s }` with minimal, positive integers, followed by one hash
/// type byte.
pub fn is_strict_der(sig: &[u8]) -> bool {
    let len = sig.len();
    if !(9..=73).contains(&len) || sig[0] != 0x30 || usize::from(sig[1]) != len - 3 {
        return false;
    }
    let len_r = usize::from(sig[3]);
    if 5 + len_r >= len {
        return false;
    }
    let len_s = usize::from(sig[5 + len_r]);
    if len_r + len_s + 7 != len {
        return false;
    }
    let integer_ok = |start: usize, n: usize| {
        sig[start - 2] == 0x02
            && n != 0
            && sig[start] & 0x80 == 0
            && !(n > 1 && sig[start] == 0 && sig[start + 1] & 0x80 == 0)
    };
    integer_ok(4, len_r) && integer_ok(len_r + 6, len_s)
}

/// # Consensus
/// Checks a P2PKH signature: `sig_with_hash_type` must be strict DER, end in `SIGHASH_ALL`, have
/// low S, and verify over `digest` with `pubkey` (33-byte compressed).
pub fn verify_signature(
    pubkey: &[u8],
    sig_with_hash_type: &[u8],
    digest: &[u8; 32],
) -> Result<(), SignatureError> {
    if !is_strict_der(sig_with_hash_type) {
        return Err(SignatureError::NonStrictDer);
    }
    let (&hash_type, der) = sig_with_hash_type
        .split_last()
        .ok_or(SignatureError::NonStrictDer)?;
    if u32::from(hash_type) != SIGHASH_ALL {
        return Err(SignatureError::BadHashType);
    }
    let key = PublicKey::from_slice(pubkey).map_err(|_| SignatureError::BadPublicKey)?;
    key.verify_digest(digest, der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wif_round_trip_and_network_check() {
        let key = PrivateKey::generate();
        for net in [Network::Main, Network::Test, Network::Regtest] {
            let wif = key.to_wif(net);
            let back = PrivateKey::from_wif(&wif, net).unwrap();
            assert_eq!(back.to_bytes(), key.to_bytes());
        }
        let wif = key.to_wif(Network::Main);
        assert!(matches!(
            PrivateKey::from_wif(&wif, Network::Regtest),
            Err(KeyError::WrongNetwork { .. })
        ));
        let mut broken = wif.into_bytes();
        broken[10] = if broken[10] == b'a' { b'b' } else { b'a' };
        let broken = String::from_utf8(broken).unwrap();
        assert!(matches!(
            PrivateKey::from_wif(&broken, Network::Main),
            Err(KeyError::Encoding(_))
        ));
    }

    #[test]
    fn bitcoin_wif_vector() {
        // Private key 1 in Bitcoin's compressed mainnet WIF (version 0x80), decoded by hand.
        let payload =
            base58check_decode("KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn").unwrap();
        assert_eq!(payload[0], 0x80);
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(&payload[1..33], &one);
        let key = PrivateKey::from_bytes(&one).unwrap();
        assert_eq!(
            hex::encode(key.public_key().pubkey_hash()),
            "751e76e8199196d454941c45d1b3a323f1433bd6"
        );
    }

    #[test]
    fn out_of_range_scalars_are_refused() {
        assert_eq!(
            PrivateKey::from_bytes(&[0; 32]).unwrap_err(),
            KeyError::OutOfRange
        );
        assert_eq!(
            PrivateKey::from_bytes(&[0xff; 32]).unwrap_err(),
            KeyError::OutOfRange
        );
    }

    #[test]
    fn signatures_are_low_s_strict_der_and_verify() {
        let key = PrivateKey::generate();
        let digest = crate::hash::sha256d(b"message");
        let mut sig = key.sign_digest(&digest);
        sig.push(SIGHASH_ALL as u8);
        assert!(is_strict_der(&sig));
        let pk = key.public_key().to_bytes();
        assert_eq!(verify_signature(&pk, &sig, &digest), Ok(()));
        let other = crate::hash::sha256d(b"other");
        assert_eq!(
            verify_signature(&pk, &sig, &other),
            Err(SignatureError::Invalid)
        );
        let mut wrong_type = sig.clone();
        *wrong_type.last_mut().unwrap() = 0x02;
        assert_eq!(
            verify_signature(&pk, &wrong_type, &digest),
            Err(SignatureError::BadHashType)
        );
    }

    #[test]
    fn high_s_is_rejected() {
        let key = PrivateKey::generate();
        let digest = crate::hash::sha256d(b"high s");
        let der = key.sign_digest(&digest);
        let sig = Signature::from_der(&der).unwrap();
        // Flip S to n - S: still a valid ECDSA signature, but high.
        let high = Signature::from_scalars(sig.r(), -*sig.s()).unwrap();
        let mut high_der = high.to_der().as_bytes().to_vec();
        high_der.push(SIGHASH_ALL as u8);
        assert!(is_strict_der(&high_der));
        assert_eq!(
            verify_signature(&key.public_key().to_bytes(), &high_der, &digest),
            Err(SignatureError::HighS)
        );
    }

    #[test]
    fn non_strict_der_is_rejected() {
        let key = PrivateKey::generate();
        let digest = crate::hash::sha256d(b"der");
        let mut sig = key.sign_digest(&digest);
        sig.push(SIGHASH_ALL as u8);
        let pk = key.public_key().to_bytes();
        // Wrong total length byte.
        let mut bad = sig.clone();
        bad[1] += 1;
        assert_eq!(
            verify_signature(&pk, &bad, &digest),
            Err(SignatureError::NonStrictDer)
        );
        // R padded with a needless zero byte.
        let mut padded = vec![0x30, sig[1] + 1, 0x02, sig[3] + 1, 0x00];
        padded.extend_from_slice(&sig[4..]);
        assert_eq!(padded.len(), sig.len() + 1);
        assert!(!is_strict_der(&padded));
        // Wrong tags and truncation.
        let mut tag = sig.clone();
        tag[0] = 0x31;
        assert!(!is_strict_der(&tag));
        assert!(!is_strict_der(&sig[..sig.len() - 2]));
        assert!(!is_strict_der(&[]));
        // Negative R (high bit set without a zero pad).
        let neg = [0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x01, 0x01];
        assert!(!is_strict_der(&neg));
        let ok = [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01];
        assert!(is_strict_der(&ok));
    }
}
