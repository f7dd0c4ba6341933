//! Just enough of apimachinery's `resource.Quantity` for `describe node`: parse, add, compare
//! and print in canonical form (`250m`, `1`, `768Mi`, `12k`).

/// Nano-units per unit.
const NANO: i128 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Format {
    #[default]
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// A quantity in nano-units with the format it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Quantity {
    nanos: i128,
    format: Format,
}

impl Quantity {
    /// Parses `250m`, `1.5`, `256Mi`, `1e3`; `None` for anything else.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (num, suffix) = s.split_at(split);
        let (negative, num) = match num.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, num.strip_prefix('+').unwrap_or(num)),
        };
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if !digits(int_part) || !digits(frac_part) {
            return None;
        }
        let (mult_num, mult_den, format): (i128, i128, Format) = match suffix {
            "" => (1, 1, Format::DecimalSi),
            "n" => (1, NANO, Format::DecimalSi),
            "u" => (1, 1_000_000, Format::DecimalSi),
            "m" => (1, 1000, Format::DecimalSi),
            "k" => (1000, 1, Format::DecimalSi),
            "M" => (1_000_000, 1, Format::DecimalSi),
            "G" => (NANO, 1, Format::DecimalSi),
            "T" => (NANO * 1000, 1, Format::DecimalSi),
            "P" => (NANO * 1_000_000, 1, Format::DecimalSi),
            "E" => (NANO * NANO, 1, Format::DecimalSi),
            "Ki" => (1 << 10, 1, Format::BinarySi),
            "Mi" => (1 << 20, 1, Format::BinarySi),
            "Gi" => (1 << 30, 1, Format::BinarySi),
            "Ti" => (1 << 40, 1, Format::BinarySi),
            "Pi" => (1 << 50, 1, Format::BinarySi),
            "Ei" => (1 << 60, 1, Format::BinarySi),
            e if e.starts_with(['e', 'E']) => {
                let exp: i32 = e[1..].parse().ok()?;
                if exp >= 0 {
                    (10i128.checked_pow(exp as u32)?, 1, Format::DecimalExponent)
                } else {
                    (
                        1,
                        10i128.checked_pow((-exp) as u32)?,
                        Format::DecimalExponent,
                    )
                }
            }
            _ => return None,
        };
        let frac: String = frac_part.chars().take(9).collect();
        let frac_nanos: i128 = if frac.is_empty() {
            0
        } else {
            frac.parse::<i128>().ok()? * 10i128.pow(9 - frac.len() as u32)
        };
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let base = int.checked_mul(NANO)?.checked_add(frac_nanos)?;
        let mut nanos = base.checked_mul(mult_num)? / mult_den;
        if negative {
            nanos = -nanos;
        }
        Some(Self { nanos, format })
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// `Add`: a zero quantity takes the format of what is added.
    pub(crate) fn add(&mut self, other: &Quantity) {
        if self.nanos == 0 {
            self.format = other.format;
        }
        self.nanos += other.nanos;
    }

    /// `MilliValue`, rounded up.
    pub(crate) fn milli_value(&self) -> i128 {
        div_ceil(self.nanos, 1_000_000)
    }

    /// `Value`, rounded up.
    pub(crate) fn value(&self) -> i128 {
        div_ceil(self.nanos, NANO)
    }

    /// The format it was written in.
    pub(crate) fn format(&self) -> Format {
        self.format
    }

    /// `NewQuantity(value, format)`.
    pub(crate) fn from_value(value: i128, format: Format) -> Self {
        Self {
            nanos: value * NANO,
            format,
        }
    }

    pub(crate) fn cmp_value(&self, other: &Quantity) -> std::cmp::Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && a > 0 { q + 1 } else { q }
}

impl std::fmt::Display for Quantity {
    /// The canonical form `Quantity.String()` prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let mut format = self.format;
        if format == Format::BinarySi && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0)
        {
            format = Format::DecimalSi;
        }
        if format == Format::BinarySi {
            let mut v = self.nanos / NANO;
            let mut exp = 0;
            while exp < 6 && v % 1024 == 0 {
                v /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return write!(f, "{v}{suffix}");
        }
        // Decimal: the largest exponent (a multiple of 3) that keeps the mantissa whole.
        let mut mantissa = self.nanos;
        let mut exp: i32 = -9;
        while mantissa % 1000 == 0 && exp < 18 {
            mantissa /= 1000;
            exp += 3;
        }
        let suffix = if format == Format::DecimalExponent {
            if exp == 0 {
                String::new()
            } else {
                format!("e{exp}")
            }
        } else {
            match exp {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                0 => "",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                _ => "E",
            }
            .to_string()
        };
        write!(f, "{mantissa}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Quantity::parse(s).unwrap().to_string()
    }

    #[test]
    fn canonical_forms() {
        for (input, want) in [
            ("250m", "250m"),
            ("1", "1"),
            ("0.5", "500m"),
            ("2000m", "2"),
            ("512Mi", "512Mi"),
            ("1024Ki", "1Mi"),
            ("1000", "1k"),
            ("128974848", "128974848"),
            ("100Gi", "100Gi"),
            ("0", "0"),
            ("1e3", "1e3"),
            ("1.5Gi", "1536Mi"),
            ("100", "100"),
        ] {
            assert_eq!(canon(input), want, "{input}");
        }
        assert!(Quantity::parse("12x").is_none());
    }

    #[test]
    fn sums_keep_the_first_format() {
        let mut q = Quantity::default();
        q.add(&Quantity::parse("256Mi").unwrap());
        q.add(&Quantity::parse("64Mi").unwrap());
        assert_eq!(q.to_string(), "320Mi");
        let mut c = Quantity::parse("250m").unwrap();
        c.add(&Quantity::parse("50m").unwrap());
        assert_eq!(c.to_string(), "300m");
        assert_eq!(c.milli_value(), 300);
        assert_eq!(Quantity::parse("8").unwrap().milli_value(), 8000);
        assert_eq!(Quantity::parse("32Gi").unwrap().value(), 32 << 30);
    }
}
