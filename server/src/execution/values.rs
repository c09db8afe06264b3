//! DuckDB values to JSON for API responses and prompts. Numbers stay numbers
//! (except integers JSON cannot hold exactly), dates and times become ISO text.

use duckdb::types::{TimeUnit, Value};
use serde_json::{json, Value as Json};

pub fn to_json(value: Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(b),
        Value::TinyInt(v) => json!(v),
        Value::SmallInt(v) => json!(v),
        Value::Int(v) => json!(v),
        Value::BigInt(v) => json!(v),
        Value::HugeInt(v) => i64::try_from(v).map(Json::from).unwrap_or_else(|_| Json::String(v.to_string())),
        Value::UTinyInt(v) => json!(v),
        Value::USmallInt(v) => json!(v),
        Value::UInt(v) => json!(v),
        Value::UBigInt(v) => json!(v),
        Value::Float(v) => float(f64::from(v)),
        Value::Double(v) => float(v),
        Value::Decimal(d) => d.to_string().parse::<f64>().map(float).unwrap_or_else(|_| Json::String(d.to_string())),
        Value::Timestamp(unit, v) => Json::String(timestamp(micros(unit, v))),
        Value::Text(s) | Value::Enum(s) => Json::String(s),
        Value::Blob(b) => Json::String(format!("<{} bytes>", b.len())),
        Value::Date32(days) => Json::String(date(days as i64)),
        Value::Time64(unit, v) => Json::String(time_of_day(micros(unit, v))),
        Value::Interval { months, days, nanos } => Json::String(format!("{months} months {days} days {}s", nanos as f64 / 1e9)),
        Value::List(items) | Value::Array(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Value::Struct(fields) => {
            Json::Object(fields.iter().map(|(k, v)| (k.clone(), to_json(v.clone()))).collect())
        }
        Value::Map(entries) => Json::Array(
            entries.iter().map(|(k, v)| json!({"key": to_json(k.clone()), "value": to_json(v.clone())})).collect(),
        ),
        Value::Union(inner) => to_json(*inner),
    }
}

fn float(v: f64) -> Json {
    serde_json::Number::from_f64(v).map(Json::Number).unwrap_or(Json::Null)
}

fn micros(unit: TimeUnit, v: i64) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1_000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v / 1_000,
    }
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (Howard Hinnant's civil-from-days).
fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn time_of_day(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let (h, m, s) = (seconds / 3600, (seconds / 60) % 60, seconds % 60);
    if fraction == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{fraction:06}")
    }
}

fn timestamp(micros: i64) -> String {
    let day = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    format!("{} {}", date(day), time_of_day(rest))
}

/// A JSON cell as plain text, for CSV output and prompts.
pub fn cell_text(value: &Json) -> String {
    match value {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_are_iso() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(19_723), "2024-01-01");
        assert_eq!(date(-1), "1969-12-31");
        assert_eq!(timestamp(86_400_000_000 + 3_723_000_000), "1970-01-02 01:02:03");
    }

    #[test]
    fn numbers_stay_numbers() {
        assert_eq!(to_json(Value::BigInt(42)), json!(42));
        assert_eq!(to_json(Value::Double(f64::NAN)), Json::Null);
        assert_eq!(to_json(Value::HugeInt(i128::MAX)), Json::String(i128::MAX.to_string()));
        assert_eq!(to_json(Value::List(vec![Value::Int(1), Value::Null])), json!([1, null]));
    }
}
