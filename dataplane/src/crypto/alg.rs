//! The ESP/AH algorithms and their keys: lengths, block and IV sizes, ICV lengths, and the
//! RouterOS `/ip ipsec key` semantics (valid lengths per algorithm, over-long keys truncated).

use std::fmt;

use zeroize::Zeroizing;

/// An ESP encryption transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// ESP_NULL (RFC 2410).
    Null,
    /// DES-CBC (RFC 2405), 64-bit key with parity bits.
    DesCbc,
    /// 3DES-CBC (RFC 2451), three 64-bit keys.
    TdesCbc,
    /// AES-CBC with a 128-bit key (RFC 3602).
    AesCbc128,
    /// AES-CBC with a 192-bit key (RFC 3602).
    AesCbc192,
    /// AES-CBC with a 256-bit key (RFC 3602).
    AesCbc256,
    /// AES-GCM with a 128-bit key and 16-byte ICV (RFC 4106); the key carries a 4-byte salt.
    AesGcm128,
    /// AES-GCM with a 256-bit key and 16-byte ICV (RFC 4106); the key carries a 4-byte salt.
    AesGcm256,
}

/// An integrity transform (ESP authentication or AH).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Auth {
    /// No integrity (ESP only; AEAD ciphers bring their own).
    Null,
    /// HMAC-MD5-96 (RFC 2403).
    HmacMd5_96,
    /// HMAC-SHA1-96 (RFC 2404).
    HmacSha1_96,
    /// HMAC-SHA-256-128 (RFC 4868).
    HmacSha256_128,
}

/// RFC 4106 section 4: the salt is the last four octets of the key material.
pub const GCM_SALT_LEN: usize = 4;
/// RFC 4106 section 3.1: the explicit IV carried in each packet.
pub const GCM_IV_LEN: usize = 8;
/// RFC 4106 section 6: the ICV length we use (the 16-octet variant, MUST be supported).
pub const GCM_ICV_LEN: usize = 16;
/// Largest ICV of any transform, the size of a job's ICV buffer.
pub const MAX_ICV_LEN: usize = 16;

impl Cipher {
    /// Every cipher.
    pub const ALL: [Cipher; 8] = [
        Cipher::Null,
        Cipher::DesCbc,
        Cipher::TdesCbc,
        Cipher::AesCbc128,
        Cipher::AesCbc192,
        Cipher::AesCbc256,
        Cipher::AesGcm128,
        Cipher::AesGcm256,
    ];

    /// Returns the key material length in bytes (GCM: key and salt).
    pub fn key_len(self) -> usize {
        match self {
            Cipher::Null => 0,
            Cipher::DesCbc => 8,
            Cipher::TdesCbc => 24,
            Cipher::AesCbc128 => 16,
            Cipher::AesCbc192 => 24,
            Cipher::AesCbc256 => 32,
            Cipher::AesGcm128 => 16 + GCM_SALT_LEN,
            Cipher::AesGcm256 => 32 + GCM_SALT_LEN,
        }
    }

    /// Returns the IV carried in each packet, in bytes.
    pub fn iv_len(self) -> usize {
        match self {
            Cipher::Null => 0,
            Cipher::DesCbc | Cipher::TdesCbc => 8,
            Cipher::AesCbc128 | Cipher::AesCbc192 | Cipher::AesCbc256 => 16,
            Cipher::AesGcm128 | Cipher::AesGcm256 => GCM_IV_LEN,
        }
    }

    /// Returns the block size the ESP payload is padded to (RFC 4303 2.4: at least 4).
    pub fn pad_align(self) -> usize {
        match self {
            Cipher::DesCbc | Cipher::TdesCbc => 8,
            Cipher::AesCbc128 | Cipher::AesCbc192 | Cipher::AesCbc256 => 16,
            Cipher::Null | Cipher::AesGcm128 | Cipher::AesGcm256 => 4,
        }
    }

    /// Returns true for CBC ciphers, whose ciphertext must be a whole number of blocks.
    pub fn is_cbc(self) -> bool {
        matches!(self, Cipher::DesCbc | Cipher::TdesCbc | Cipher::AesCbc128 | Cipher::AesCbc192 | Cipher::AesCbc256)
    }

    /// Returns true for combined-mode (AEAD) ciphers.
    pub fn is_aead(self) -> bool {
        matches!(self, Cipher::AesGcm128 | Cipher::AesGcm256)
    }

    /// Parses a name as [`Cipher::name`] returns it.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }

    /// Returns the name `installed-sa print` shows.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Null => "null",
            Cipher::DesCbc => "des-cbc",
            Cipher::TdesCbc => "3des-cbc",
            Cipher::AesCbc128 => "aes-cbc-128",
            Cipher::AesCbc192 => "aes-cbc-192",
            Cipher::AesCbc256 => "aes-cbc-256",
            Cipher::AesGcm128 => "aes-gcm-128",
            Cipher::AesGcm256 => "aes-gcm-256",
        }
    }
}

impl Auth {
    /// Every integrity transform.
    pub const ALL: [Auth; 4] = [Auth::Null, Auth::HmacMd5_96, Auth::HmacSha1_96, Auth::HmacSha256_128];

    /// Returns the key length in bytes (RFC 2403/2404/4868: the hash output size).
    pub fn key_len(self) -> usize {
        match self {
            Auth::Null => 0,
            Auth::HmacMd5_96 => 16,
            Auth::HmacSha1_96 => 20,
            Auth::HmacSha256_128 => 32,
        }
    }

    /// Returns the truncated ICV length in bytes.
    pub fn icv_len(self) -> usize {
        match self {
            Auth::Null => 0,
            Auth::HmacMd5_96 | Auth::HmacSha1_96 => 12,
            Auth::HmacSha256_128 => 16,
        }
    }

    /// Parses a name as [`Auth::name`] returns it.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Returns the name `installed-sa print` shows.
    pub fn name(self) -> &'static str {
        match self {
            Auth::Null => "null",
            Auth::HmacMd5_96 => "md5hmac",
            Auth::HmacSha1_96 => "sha1hmac",
            Auth::HmacSha256_128 => "sha256hmac",
        }
    }
}

/// A valid pairing of cipher and integrity for one SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Transform {
    cipher: Cipher,
    auth: Auth,
}

impl Transform {
    /// Pairs a cipher with an integrity transform. AEAD ciphers take `Auth::Null`; ESP with
    /// neither confidentiality nor integrity is refused (RFC 4303 section 3.2).
    pub fn new(cipher: Cipher, auth: Auth) -> Result<Self, KeyError> {
        if cipher.is_aead() && auth != Auth::Null {
            return Err(KeyError::AeadWithAuth(cipher));
        }
        if cipher == Cipher::Null && auth == Auth::Null {
            return Err(KeyError::NullNull);
        }
        Ok(Transform { cipher, auth })
    }

    /// Returns an integrity-only transform, as AH uses.
    pub fn auth_only(auth: Auth) -> Result<Self, KeyError> {
        Self::new(Cipher::Null, auth)
    }

    /// Returns the cipher.
    pub fn cipher(self) -> Cipher {
        self.cipher
    }

    /// Returns the integrity transform.
    pub fn auth(self) -> Auth {
        self.auth
    }

    /// Returns the ICV length the packet carries.
    pub fn icv_len(self) -> usize {
        if self.cipher.is_aead() { GCM_ICV_LEN } else { self.auth.icv_len() }
    }
}

/// The algorithm of a `/ip ipsec key` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// `3des`: 192 bits.
    Tdes,
    /// `aes`: 128, 192 or 256 bits.
    Aes,
    /// `aes-gcm`: 160 or 288 bits (AES key and 32-bit salt, RFC 4106 section 8.1).
    AesGcm,
    /// `des`: 64 bits.
    Des,
    /// `md5`: 128 bits.
    Md5,
    /// `null`: any length.
    Null,
    /// `sha1`: 160 bits.
    Sha1,
    /// `sha256`: 256 bits.
    Sha256,
}

impl KeyAlgorithm {
    /// Every key algorithm, in the order RouterOS lists them.
    pub const ALL: [KeyAlgorithm; 8] = [
        KeyAlgorithm::Tdes,
        KeyAlgorithm::Aes,
        KeyAlgorithm::AesGcm,
        KeyAlgorithm::Des,
        KeyAlgorithm::Md5,
        KeyAlgorithm::Null,
        KeyAlgorithm::Sha1,
        KeyAlgorithm::Sha256,
    ];

    /// Returns the console name.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Tdes => "3des",
            KeyAlgorithm::Aes => "aes",
            KeyAlgorithm::AesGcm => "aes-gcm",
            KeyAlgorithm::Des => "des",
            KeyAlgorithm::Md5 => "md5",
            KeyAlgorithm::Null => "null",
            KeyAlgorithm::Sha1 => "sha1",
            KeyAlgorithm::Sha256 => "sha256",
        }
    }

    /// Parses a console name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Returns the key lengths in bits the algorithm takes; empty means any.
    pub fn lengths(self) -> &'static [u32] {
        match self {
            KeyAlgorithm::Tdes => &[192],
            KeyAlgorithm::Aes => &[128, 192, 256],
            KeyAlgorithm::AesGcm => &[160, 288],
            KeyAlgorithm::Des => &[64],
            KeyAlgorithm::Md5 => &[128],
            KeyAlgorithm::Null => &[],
            KeyAlgorithm::Sha1 => &[160],
            KeyAlgorithm::Sha256 => &[256],
        }
    }

    /// Returns the encryption transform a key of this algorithm and length keys, if any.
    pub fn cipher(self, bits: u32) -> Option<Cipher> {
        Some(match (self, bits) {
            (KeyAlgorithm::Null, _) => Cipher::Null,
            (KeyAlgorithm::Des, 64) => Cipher::DesCbc,
            (KeyAlgorithm::Tdes, 192) => Cipher::TdesCbc,
            (KeyAlgorithm::Aes, 128) => Cipher::AesCbc128,
            (KeyAlgorithm::Aes, 192) => Cipher::AesCbc192,
            (KeyAlgorithm::Aes, 256) => Cipher::AesCbc256,
            (KeyAlgorithm::AesGcm, 160) => Cipher::AesGcm128,
            (KeyAlgorithm::AesGcm, 288) => Cipher::AesGcm256,
            _ => return None,
        })
    }

    /// Returns the integrity transform a key of this algorithm keys, if any.
    pub fn auth(self) -> Option<Auth> {
        Some(match self {
            KeyAlgorithm::Null => Auth::Null,
            KeyAlgorithm::Md5 => Auth::HmacMd5_96,
            KeyAlgorithm::Sha1 => Auth::HmacSha1_96,
            KeyAlgorithm::Sha256 => Auth::HmacSha256_128,
            _ => return None,
        })
    }

    /// Builds key bytes the way `/ip ipsec key add algorithm=.. length=.. key=..` does: the
    /// length must be valid for the algorithm, the hex value (with or without `0x`) must have
    /// at least `length` bits, and extra bits are truncated.
    pub fn key_from_hex(self, length_bits: u32, hex_key: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let lengths = self.lengths();
        if (!lengths.is_empty() && !lengths.contains(&length_bits)) || !length_bits.is_multiple_of(8) {
            return Err(KeyError::BadLength { alg: self.name(), bits: length_bits, takes: lengths });
        }
        let digits = hex_key.strip_prefix("0x").or_else(|| hex_key.strip_prefix("0X")).unwrap_or(hex_key);
        if !digits.len().is_multiple_of(2) || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyError::NotHex);
        }
        let need = (length_bits / 8) as usize;
        if digits.len() / 2 < need {
            return Err(KeyError::TooShort { alg: self.name(), bits: length_bits, got: digits.len() as u32 * 4 });
        }
        let mut key = Zeroizing::new(vec![0u8; need]);
        hex::decode_to_slice(&digits[..need * 2], &mut key[..]).map_err(|_| KeyError::NotHex)?;
        Ok(key)
    }
}

/// Why a key or transform was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The length is not one the algorithm takes.
    BadLength { alg: &'static str, bits: u32, takes: &'static [u32] },
    /// The key has fewer bits than the length asks for.
    TooShort { alg: &'static str, bits: u32, got: u32 },
    /// The key is not a hexadecimal string of whole bytes.
    NotHex,
    /// The key bytes do not have the length the transform needs.
    WrongKeyLen { alg: &'static str, need: usize, got: usize },
    /// A DES or 3DES key that is weak or whose parts repeat (RFC 2451 section 2.3).
    WeakKey(&'static str),
    /// An AEAD cipher paired with a separate integrity transform.
    AeadWithAuth(Cipher),
    /// ESP with neither encryption nor integrity.
    NullNull,
    /// The crypto engine could not prepare the keys.
    Engine(&'static str),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::BadLength { alg, bits, takes } => {
                write!(f, "invalid key length {bits} for {alg}: takes ")?;
                for (i, t) in takes.iter().enumerate() {
                    let sep = match i {
                        0 => "",
                        _ if i + 1 == takes.len() => " or ",
                        _ => ", ",
                    };
                    write!(f, "{sep}{t}")?;
                }
                write!(f, " bits")
            }
            KeyError::TooShort { alg, bits, got } => {
                write!(f, "key too short for {alg}: length is {bits} bits but the key has {got}")
            }
            KeyError::NotHex => write!(f, "key must be hexadecimal digits, whole bytes"),
            KeyError::WrongKeyLen { alg, need, got } => {
                write!(f, "{alg} needs a {need}-byte key, got {got} bytes")
            }
            KeyError::WeakKey(alg) => write!(f, "weak {alg} key refused"),
            KeyError::AeadWithAuth(c) => {
                write!(f, "{} carries its own integrity: auth-algorithm must be null", c.name())
            }
            KeyError::NullNull => write!(f, "ESP needs encryption or authentication, not both null"),
            KeyError::Engine(e) => write!(f, "crypto engine {e} could not prepare the keys"),
        }
    }
}

impl std::error::Error for KeyError {}

/// Checks that `key` has exactly the length `need` for `alg`.
pub(crate) fn check_key_len(alg: &'static str, need: usize, key: &[u8]) -> Result<(), KeyError> {
    if key.len() != need {
        return Err(KeyError::WrongKeyLen { alg, need, got: key.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_semantics_follow_the_manual() {
        // Longer keys are truncated to `length`.
        let k = KeyAlgorithm::Des.key_from_hex(64, "0x0123456789abcdef0011").unwrap();
        assert_eq!(&k[..], &hex::decode("0123456789abcdef").unwrap()[..]);
        let k = KeyAlgorithm::Aes.key_from_hex(128, "000102030405060708090a0b0c0d0e0fff").unwrap();
        assert_eq!(k.len(), 16);
        // Null takes any length, including none.
        assert_eq!(KeyAlgorithm::Null.key_from_hex(0, "").unwrap().len(), 0);
        assert_eq!(KeyAlgorithm::Null.key_from_hex(24, "abcdef").unwrap().len(), 3);
    }

    #[test]
    fn key_errors_name_the_algorithm_and_lengths() {
        let e = KeyAlgorithm::Aes.key_from_hex(100, "00").unwrap_err();
        assert_eq!(e.to_string(), "invalid key length 100 for aes: takes 128, 192 or 256 bits");
        let e = KeyAlgorithm::Sha1.key_from_hex(128, "00").unwrap_err();
        assert_eq!(e.to_string(), "invalid key length 128 for sha1: takes 160 bits");
        let e = KeyAlgorithm::Md5.key_from_hex(128, "0011").unwrap_err();
        assert_eq!(e.to_string(), "key too short for md5: length is 128 bits but the key has 16");
        assert_eq!(KeyAlgorithm::Md5.key_from_hex(128, "xyz").unwrap_err(), KeyError::NotHex);
        assert_eq!(KeyAlgorithm::Md5.key_from_hex(128, "abc").unwrap_err(), KeyError::NotHex);
    }

    #[test]
    fn transforms_refuse_bad_pairs() {
        assert_eq!(Transform::new(Cipher::Null, Auth::Null), Err(KeyError::NullNull));
        assert!(Transform::new(Cipher::AesGcm128, Auth::HmacSha1_96).is_err());
        let t = Transform::new(Cipher::AesGcm256, Auth::Null).unwrap();
        assert_eq!(t.icv_len(), 16);
        assert_eq!(Transform::auth_only(Auth::HmacSha256_128).unwrap().icv_len(), 16);
    }

    #[test]
    fn key_algorithms_map_to_transforms() {
        for alg in KeyAlgorithm::ALL {
            assert_eq!(KeyAlgorithm::from_name(alg.name()), Some(alg));
            for &bits in alg.lengths() {
                if let Some(c) = alg.cipher(bits) {
                    assert_eq!(c.key_len() * 8, bits as usize, "{}", alg.name());
                }
            }
            if let (Some(a), Some(&bits)) = (alg.auth(), alg.lengths().first()) {
                assert_eq!(a.key_len() * 8, bits as usize);
            }
        }
    }
}
