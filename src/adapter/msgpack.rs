//! MessagePack <-> JSON the way `notepack.io` (the packages' encoder) and Socket.IO see it:
//! binary becomes an attachment behind a `{"_placeholder":true,"num":i}` object, dates become
//! the ISO strings `JSON.stringify` would send, `undefined` becomes `null` (or a missing key).

use bytes::Bytes;
use rmpv::{Value as Mp, ValueRef};
use serde_json::{Map, Number, Value};

use super::DecodeError;
use crate::socketio::packet::MAX_ATTACHMENTS;

/// `rmpv` depth budget (each nesting level spends about two): about 64 levels.
const MAX_DEPTH: usize = 128;
/// Largest integral float still encoded as an integer (notepack does so for any integral
/// number; past 2^63 the integer forms cannot hold it).
const MAX_INT_FLOAT: f64 = 9_223_372_036_854_775_807.0;
/// The range of a JavaScript `Date`, in ms either side of the epoch.
const MAX_DATE_MS: i128 = 8_640_000_000_000_000;

/// Parses one MessagePack value that must fill `bytes` exactly (notepack rejects trailing
/// bytes too).
pub(crate) fn parse(bytes: &[u8]) -> Result<ValueRef<'_>, DecodeError> {
    let mut rd = bytes;
    let v = rmpv::decode::read_value_ref_with_max_depth(&mut rd, MAX_DEPTH)
        .map_err(|e| DecodeError::NotMsgpack(e.to_string()))?;
    if !rd.is_empty() {
        return Err(DecodeError::TrailingBytes(rd.len()));
    }
    Ok(v)
}

/// Converts to JSON; `Ok(None)` is `undefined`. Binary values are appended to `attachments`.
pub(crate) fn to_json(
    v: &ValueRef<'_>,
    attachments: &mut Vec<Bytes>,
) -> Result<Option<Value>, DecodeError> {
    Ok(Some(match v {
        ValueRef::Nil => Value::Null,
        ValueRef::Boolean(b) => Value::Bool(*b),
        ValueRef::Integer(i) => {
            if let Some(u) = i.as_u64() {
                Value::from(u)
            } else if let Some(s) = i.as_i64() {
                Value::from(s)
            } else {
                Value::Null
            }
        }
        ValueRef::F32(f) => float(f64::from(*f)),
        ValueRef::F64(f) => float(*f),
        ValueRef::String(s) => Value::String(match s.as_str() {
            Some(s) => s.to_owned(),
            None => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        }),
        ValueRef::Binary(b) => placeholder(b, attachments)?,
        ValueRef::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                // JSON.stringify turns undefined array items into null.
                out.push(to_json(item, attachments)?.unwrap_or(Value::Null));
            }
            Value::Array(out)
        }
        ValueRef::Map(entries) => {
            let mut out = Map::with_capacity(entries.len());
            for (k, val) in entries {
                let key = map_key(k)?;
                match to_json(val, attachments)? {
                    Some(val) => {
                        out.insert(key, val);
                    }
                    // An undefined value: the key is absent in JSON (a later duplicate
                    // removes an earlier one, as the assignment in JS would).
                    None => {
                        out.remove(&key);
                    }
                }
            }
            Value::Object(out)
        }
        ValueRef::Ext(kind, data) => return ext(*kind, data, attachments),
    }))
}

/// notepack's extension types: -1 timestamps (Date), and its legacy type 0: one byte of
/// `undefined`, eight bytes of a Date in ms, anything else an ArrayBuffer. Other types decode
/// to `[type, <binary>]` as notepack does.
fn ext(kind: i8, data: &[u8], attachments: &mut Vec<Bytes>) -> Result<Option<Value>, DecodeError> {
    match (kind, data.len()) {
        (-1, _) => Ok(Some(timestamp(data).map_or(Value::Null, Value::String))),
        (0, 1) => Ok(None),
        (0, 8) => {
            let hi = i64::from(i32::from_be_bytes([data[0], data[1], data[2], data[3]]));
            let lo = i64::from(u32::from_be_bytes([data[4], data[5], data[6], data[7]]));
            let ms = i128::from(hi) * (1i128 << 32) + i128::from(lo);
            Ok(Some(iso_from_ms(ms).map_or(Value::Null, Value::String)))
        }
        (0, _) => Ok(Some(placeholder(data, attachments)?)),
        _ => Ok(Some(Value::Array(vec![
            Value::from(kind),
            placeholder(data, attachments)?,
        ]))),
    }
}

fn placeholder(data: &[u8], attachments: &mut Vec<Bytes>) -> Result<Value, DecodeError> {
    if attachments.len() >= MAX_ATTACHMENTS {
        return Err(DecodeError::TooManyAttachments(MAX_ATTACHMENTS));
    }
    let num = attachments.len();
    attachments.push(Bytes::copy_from_slice(data));
    let mut m = Map::with_capacity(2);
    m.insert("_placeholder".into(), Value::Bool(true));
    m.insert("num".into(), Value::from(num));
    Ok(Value::Object(m))
}

/// Keeps only the attachments a placeholder in `v` still names, renumbered in the order they
/// appear. A binary whose value a later duplicate map key replaced (or removed as `undefined`),
/// or one outside the packet data, would otherwise go to every client as an extra binary frame
/// no placeholder names; notepack loses such a value, so the Node adapter never sends it.
pub(crate) fn keep_referenced(v: &mut Value, attachments: Vec<Bytes>) -> Vec<Bytes> {
    fn walk(v: &mut Value, old: &[Bytes], renum: &mut [Option<usize>], kept: &mut Vec<Bytes>) {
        match v {
            Value::Object(map) => {
                if map.get("_placeholder") == Some(&Value::Bool(true)) {
                    let num = map.get("num").and_then(Value::as_u64);
                    if let Some(i) = num
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|&i| i < old.len())
                    {
                        let n = *renum[i].get_or_insert_with(|| {
                            kept.push(old[i].clone());
                            kept.len() - 1
                        });
                        map.insert("num".into(), Value::from(n));
                    }
                    return;
                }
                map.values_mut().for_each(|v| walk(v, old, renum, kept));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, old, renum, kept)),
            _ => {}
        }
    }
    if attachments.is_empty() {
        return attachments;
    }
    let mut renum = vec![None; attachments.len()];
    let mut kept = Vec::with_capacity(attachments.len());
    walk(v, &attachments, &mut renum, &mut kept);
    kept
}

/// JS object keys are strings: numbers, booleans and nil are converted as JS would.
fn map_key(k: &ValueRef<'_>) -> Result<String, DecodeError> {
    Ok(match k {
        ValueRef::String(s) => match s.as_str() {
            Some(s) => s.to_owned(),
            None => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        },
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::F32(f) => float(f64::from(*f)).to_string(),
        ValueRef::F64(f) => float(*f).to_string(),
        ValueRef::Boolean(b) => b.to_string(),
        ValueRef::Nil => "null".into(),
        _ => return Err(DecodeError::BadMapKey),
    })
}

/// A JSON number; NaN and the infinities become `null`, as in `JSON.stringify`.
fn float(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < MAX_INT_FLOAT {
        // notepack and JS do not tell 2.0 from 2; keep it an integer in JSON as well.
        return Value::from(f as i64);
    }
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// MessagePack timestamp (32, 64 or 96 bit) to the ISO string of the JS Date it decodes to.
fn timestamp(data: &[u8]) -> Option<String> {
    let (secs, nanos): (i128, i128) = match data.len() {
        4 => (i128::from(u32::from_be_bytes(data.try_into().ok()?)), 0),
        8 => {
            let v = u64::from_be_bytes(data.try_into().ok()?);
            (i128::from(v & 0x3_ffff_ffff), i128::from(v >> 34))
        }
        12 => (
            i128::from(i64::from_be_bytes(data[4..12].try_into().ok()?)),
            i128::from(u32::from_be_bytes(data[0..4].try_into().ok()?)),
        ),
        _ => return None,
    };
    iso_from_ms(secs * 1000 + nanos / 1_000_000)
}

/// `Date.prototype.toISOString` (`None` for an invalid Date, which JSON turns into `null`).
pub(crate) fn iso_from_ms(ms: i128) -> Option<String> {
    if ms.abs() > MAX_DATE_MS {
        return None;
    }
    let ms = ms as i64;
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    let year = if (0..=9999).contains(&y) {
        format!("{y:04}")
    } else if y < 0 {
        format!("-{:06}", -y)
    } else {
        format!("+{y:06}")
    };
    Some(format!(
        "{year}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z"
    ))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// JSON (with placeholders standing for `attachments`) to MessagePack values as notepack
/// would build them from the same JS value: placeholders become `bin`, integral numbers
/// integers. With no attachments a placeholder-shaped object is plain data.
pub(crate) fn from_json(v: &Value, attachments: &[Bytes]) -> Mp {
    match v {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Mp::from(u)
            } else if let Some(i) = n.as_i64() {
                Mp::from(i)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < MAX_INT_FLOAT {
                    Mp::from(f as i64)
                } else {
                    Mp::F64(f)
                }
            }
        }
        Value::String(s) => Mp::from(s.as_str()),
        Value::Array(items) => Mp::Array(items.iter().map(|i| from_json(i, attachments)).collect()),
        Value::Object(map) => {
            if let Some(bin) = placeholder_target(map, attachments) {
                return Mp::Binary(bin.to_vec());
            }
            Mp::Map(
                map.iter()
                    .map(|(k, v)| (Mp::from(k.as_str()), from_json(v, attachments)))
                    .collect(),
            )
        }
    }
}

fn placeholder_target<'a>(map: &Map<String, Value>, attachments: &'a [Bytes]) -> Option<&'a Bytes> {
    if attachments.is_empty() || map.get("_placeholder") != Some(&Value::Bool(true)) {
        return None;
    }
    let num = map.get("num")?.as_u64()?;
    attachments.get(usize::try_from(num).ok()?)
}

/// Writes one value; writing into a `Vec` cannot fail.
pub(crate) fn write(v: &Mp) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    if let Err(e) = rmpv::encode::write_value(&mut out, v) {
        // Unreachable: the writer is a Vec. Keep going with what was written.
        log::error!("msgpack encode: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_match_javascript() {
        // new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)).toISOString()
        assert_eq!(
            iso_from_ms(1_704_164_645_678).as_deref(),
            Some("2024-01-02T03:04:05.678Z")
        );
        assert_eq!(iso_from_ms(0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
        // new Date(-1).toISOString()
        assert_eq!(iso_from_ms(-1).as_deref(), Some("1969-12-31T23:59:59.999Z"));
        // new Date(253402300800000).toISOString() (year 10000)
        assert_eq!(
            iso_from_ms(253_402_300_800_000).as_deref(),
            Some("+010000-01-01T00:00:00.000Z")
        );
        assert_eq!(iso_from_ms(MAX_DATE_MS + 1), None);
    }

    #[test]
    fn undefined_is_null_in_arrays_and_absent_in_maps() {
        // [undefined, {a: undefined, b: 1}] with notepack's legacy fixext undefined
        let bytes = [
            0x92, 0xd4, 0x00, 0x00, 0x82, 0xa1, b'a', 0xd4, 0x00, 0x00, 0xa1, b'b', 0x01,
        ];
        let mut att = Vec::new();
        let v = to_json(&parse(&bytes).unwrap(), &mut att).unwrap();
        assert_eq!(v, Some(serde_json::json!([null, {"b": 1}])));
    }

    #[test]
    fn non_finite_floats_become_null_and_integral_floats_integers() {
        let mut att = Vec::new();
        let nan = [0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            to_json(&parse(&nan).unwrap(), &mut att).unwrap(),
            Some(Value::Null)
        );
        let two = [0xcb, 0x40, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            to_json(&parse(&two).unwrap(), &mut att).unwrap(),
            Some(Value::from(2))
        );
        assert_eq!(write(&from_json(&serde_json::json!(2.0), &[])), vec![0x02]);
        assert_eq!(write(&from_json(&serde_json::json!(1.5), &[]))[0], 0xcb);
    }

    #[test]
    fn trailing_bytes_and_truncation_are_errors() {
        assert!(matches!(
            parse(&[0x01, 0x02]),
            Err(DecodeError::TrailingBytes(1))
        ));
        assert!(matches!(
            parse(&[0x92, 0x01]),
            Err(DecodeError::NotMsgpack(_))
        ));
        // an array announcing 2^32-1 items must fail on the missing bytes, not allocate
        assert!(parse(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn deep_nesting_is_rejected_without_overflowing_the_stack() {
        let deep = vec![0x91u8; 100_000];
        assert!(matches!(parse(&deep), Err(DecodeError::NotMsgpack(_))));
    }

    #[test]
    fn placeholder_shaped_data_without_attachments_stays_data() {
        let v = serde_json::json!({"_placeholder": true, "num": 0});
        assert!(matches!(from_json(&v, &[]), Mp::Map(_)));
        assert!(matches!(
            from_json(&v, &[Bytes::from_static(b"x")]),
            Mp::Binary(_)
        ));
    }
}
