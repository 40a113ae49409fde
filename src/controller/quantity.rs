//! Kubernetes resource quantities (`10Gi`, `500m`, `1e3`) as numbers, so that `0.5` and `500m`
//! compare equal when the operator decides whether a child object needs a write.

/// The value of a quantity string, or `None` when it is not one.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::parse_quantity;

    #[test]
    fn parses_the_suffixes_kubernetes_accepts() {
        let table = [
            ("1Gi", Some(1073741824.0)),
            ("500m", Some(0.5)),
            ("0.5", Some(0.5)),
            ("2k", Some(2000.0)),
            ("1e3", Some(1000.0)),
            ("128Mi", Some(134217728.0)),
            ("ten", None),
            ("", None),
            ("1Zi", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_quantity(input), want, "{input}");
        }
    }
}
