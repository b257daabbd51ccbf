//! `datetime` and `duration` values, encoded as the MessagePack extensions the host expects
//! (timestamp type -1; sluice duration type 1).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const TIMESTAMP_EXT: i8 = -1;
const DURATION_EXT: i8 = 1;
const NANOS_PER_SEC: i128 = 1_000_000_000;

/// rmp-serde writes a newtype struct with this name as an extension value.
#[derive(Serialize)]
#[serde(rename = "_ExtStruct")]
struct ExtOut<'a>((i8, &'a serde_bytes::Bytes));

#[derive(Deserialize)]
#[serde(rename = "_ExtStruct")]
struct ExtIn((i8, serde_bytes::ByteBuf));

pub(crate) fn serialize_ext<S: Serializer>(
    s: S,
    code: i8,
    payload: &[u8],
) -> Result<S::Ok, S::Error> {
    ExtOut((code, serde_bytes::Bytes::new(payload))).serialize(s)
}

pub(crate) fn deserialize_ext<'de, D: Deserializer<'de>>(
    d: D,
    want: i8,
    what: &str,
) -> Result<Vec<u8>, D::Error> {
    let ExtIn((code, payload)) = ExtIn::deserialize(d)?;
    if code != want {
        return Err(serde::de::Error::custom(format!(
            "expected a {what} (extension type {want}), found extension type {code}"
        )));
    }
    Ok(payload.into_vec())
}

/// An instant in UTC with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Datetime {
    pub seconds: i64,
    pub nanos: u32,
}

impl Datetime {
    pub fn from_unix(seconds: i64, nanos: u32) -> Self {
        Datetime { seconds, nanos }
    }
}

impl Serialize for Datetime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The shortest of MessagePack's three timestamp layouts, as the host writes them.
        if self.nanos == 0 && (0..=u32::MAX as i64).contains(&self.seconds) {
            serialize_ext(s, TIMESTAMP_EXT, &(self.seconds as u32).to_be_bytes())
        } else if (0..(1i64 << 34)).contains(&self.seconds) {
            let packed = ((self.nanos as u64) << 34) | self.seconds as u64;
            serialize_ext(s, TIMESTAMP_EXT, &packed.to_be_bytes())
        } else {
            let mut b = [0u8; 12];
            b[..4].copy_from_slice(&self.nanos.to_be_bytes());
            b[4..].copy_from_slice(&self.seconds.to_be_bytes());
            serialize_ext(s, TIMESTAMP_EXT, &b)
        }
    }
}

impl<'de> Deserialize<'de> for Datetime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = deserialize_ext(d, TIMESTAMP_EXT, "datetime")?;
        let be_u32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        match p.len() {
            4 => Ok(Datetime::from_unix(be_u32(&p) as i64, 0)),
            8 => {
                let packed = ((be_u32(&p[..4]) as u64) << 32) | be_u32(&p[4..]) as u64;
                Ok(Datetime::from_unix(
                    (packed & ((1 << 34) - 1)) as i64,
                    (packed >> 34) as u32,
                ))
            }
            12 => {
                let seconds = ((be_u32(&p[4..8]) as u64) << 32 | be_u32(&p[8..]) as u64) as i64;
                Ok(Datetime::from_unix(seconds, be_u32(&p[..4])))
            }
            n => Err(serde::de::Error::custom(format!("timestamp of {n} bytes"))),
        }
    }
}

/// A signed span of time: `seconds + nanos / 1e9` with nanos in 0..1e9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    pub seconds: i64,
    pub nanos: u32,
}

impl Duration {
    pub fn from_nanos(total: i128) -> Self {
        Duration {
            seconds: total.div_euclid(NANOS_PER_SEC) as i64,
            nanos: total.rem_euclid(NANOS_PER_SEC) as u32,
        }
    }

    pub fn from_secs(seconds: i64) -> Self {
        Duration { seconds, nanos: 0 }
    }

    pub fn as_nanos(&self) -> i128 {
        self.seconds as i128 * NANOS_PER_SEC + self.nanos as i128
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration::from_nanos(d.as_nanos() as i128)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&self.seconds.to_be_bytes());
        b[8..].copy_from_slice(&self.nanos.to_be_bytes());
        serialize_ext(s, DURATION_EXT, &b)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = deserialize_ext(d, DURATION_EXT, "duration")?;
        let b: [u8; 12] = p
            .as_slice()
            .try_into()
            .map_err(|_| serde::de::Error::custom("duration must be 12 bytes"))?;
        let mut secs = [0u8; 8];
        secs.copy_from_slice(&b[..8]);
        let mut nanos = [0u8; 4];
        nanos.copy_from_slice(&b[8..]);
        Ok(Duration {
            seconds: i64::from_be_bytes(secs),
            nanos: u32::from_be_bytes(nanos),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_and_durations_round_trip_through_messagepack() {
        for dt in [
            Datetime::from_unix(1_700_000_000, 0),
            Datetime::from_unix(1_700_000_000, 123),
            Datetime::from_unix(-86_400, 5),
        ] {
            let bytes = rmp_serde::to_vec(&dt).unwrap();
            assert_eq!(rmp_serde::from_slice::<Datetime>(&bytes).unwrap(), dt);
        }
        let d = Duration::from_nanos(-1_500_000_000);
        assert_eq!((d.seconds, d.nanos), (-2, 500_000_000));
        let bytes = rmp_serde::to_vec(&d).unwrap();
        assert_eq!(bytes[..3], [0xc7, 12, 1]);
        assert_eq!(rmp_serde::from_slice::<Duration>(&bytes).unwrap(), d);
    }
}
