//! A TCP-MD5 password that never shows itself.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a [`Password`] shows instead of itself.
pub const REDACTED: &str = "<redacted>";

/// A TCP-MD5 password (RFC 2385). Its `Debug`, `Display` and serde output
/// are [`REDACTED`], so a config that is logged (a reload's diff at debug
/// level), shown or served never carries the key; the key itself is read
/// only where it is given to the kernel, through [`Password::expose`].
/// It is read from a plain string (or a number: YAML's `password: 1234`).
///
/// ```
/// use bgp_core::speaker::Password;
///
/// let p: Password = serde_json::from_str(r#""s3cret""#).unwrap();
/// assert_eq!(p.expose(), "s3cret");
/// assert_eq!(format!("{p} {p:?} {:?}", Some(&p)), "<redacted> <redacted> Some(<redacted>)");
/// assert_eq!(serde_json::to_string(&p).unwrap(), r#""<redacted>""#);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Password(String);

impl Password {
    /// A password of these bytes.
    pub fn new(key: impl Into<String>) -> Password {
        Password(key.into())
    }

    /// The key, for the socket option that sets it (and nothing else).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in bytes (Linux takes 1 to 80, `TCP_MD5SIG_MAXKEYLEN`).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Password {
    fn from(key: &str) -> Password {
        Password::new(key)
    }
}

impl From<String> for Password {
    fn from(key: String) -> Password {
        Password(key)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Password {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Password, D::Error> {
        struct Key;
        impl serde::de::Visitor<'_> for Key {
            type Value = Password;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TCP-MD5 password (a string)")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Password, E> {
                Ok(Password::new(v))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Password, E> {
                Ok(Password(v))
            }

            // YAML reads `password: 1234` as a number; the key is its text.
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Password, E> {
                Ok(Password(v.to_string()))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Password, E> {
                Ok(Password(v.to_string()))
            }
        }
        d.deserialize_string(Key)
    }
}
