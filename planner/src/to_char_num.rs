//! `to_char(number, template)` with PostgreSQL's numeric template patterns
//! (the C locale's symbols): digit positions `9` (blank when unused) and
//! `0` (zero-filled from there on), the decimal point `.`/`D`, group
//! separators `,`/`G` (blank before the first digit), signs `S` (anchored
//! to the number when leading), `MI`, `PL`, `SG`, `PR` (`<n>`), `L`
//! (currency, blank), `V` (shifts digits: `99V99` multiplies by 100),
//! `EEEE` (scientific), `RN`/`rn` (roman numerals), `TH`/`th` (ordinal
//! suffix), `FM` (no padding, no trailing zeros past the last `0`), quoted
//! text and other characters copied. Without a sign pattern a position is
//! kept for the sign (blank when positive). A number with more integer
//! digits than the template has positions prints `#` in every position.
//! Numbers are rounded half away from zero; `real`/`double precision`
//! round as their binary value does (PostgreSQL prints them with
//! `%.*f`, ties to even).

use crate::error::PlannerError;

/// A value to format: an exact decimal `digits × 10^-scale`, or a float.
#[derive(Debug, Clone, Copy)]
pub enum Number {
    Decimal { digits: i128, scale: i32 },
    Float(f64),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A digit position; `true` for `0`.
    Digit(bool),
    Point,
    Group,
    Sign,
    Minus,
    Plus,
    SignAlways,
    Angle,
    Currency,
    Shift,
    Sci,
    Roman {
        lower: bool,
    },
    Ordinal {
        upper: bool,
    },
    Blank,
    Text(String),
}

fn syntax(m: impl Into<String>) -> PlannerError {
    PlannerError::Syntax(m.into())
}

/// The template's tokens and whether `FM` was given.
fn parse(template: &str) -> Result<(Vec<Tok>, bool), PlannerError> {
    let chars: Vec<char> = template.chars().collect();
    let mut toks = Vec::new();
    let mut fm = false;
    let mut i = 0;
    let at = |i: usize, word: &str| -> bool {
        let w: Vec<char> = word.chars().collect();
        chars.len() >= i + w.len()
            && chars[i..i + w.len()]
                .iter()
                .zip(&w)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            let mut text = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                text.push(chars[i]);
                i += 1;
            }
            i += 1;
            toks.push(Tok::Text(text));
            continue;
        }
        if c == '\\' && i + 1 < chars.len() {
            toks.push(Tok::Text(chars[i + 1].to_string()));
            i += 2;
            continue;
        }
        let (tok, len) = if at(i, "FM") {
            fm = true;
            i += 2;
            continue;
        } else if at(i, "EEEE") {
            (Tok::Sci, 4)
        } else if at(i, "RN") {
            (
                Tok::Roman {
                    lower: chars[i] == 'r',
                },
                2,
            )
        } else if chars[i..].starts_with(&['T', 'H']) {
            (Tok::Ordinal { upper: true }, 2)
        } else if chars[i..].starts_with(&['t', 'h']) {
            (Tok::Ordinal { upper: false }, 2)
        } else if at(i, "PR") {
            (Tok::Angle, 2)
        } else if at(i, "PL") {
            (Tok::Plus, 2)
        } else if at(i, "SG") {
            (Tok::SignAlways, 2)
        } else if at(i, "MI") {
            (Tok::Minus, 2)
        } else {
            let t = match c {
                '9' => Tok::Digit(false),
                '0' => Tok::Digit(true),
                '.' | 'D' | 'd' => Tok::Point,
                ',' | 'G' | 'g' => Tok::Group,
                'S' | 's' => Tok::Sign,
                'L' | 'l' => Tok::Currency,
                'V' | 'v' => Tok::Shift,
                'B' | 'b' => Tok::Blank,
                c => Tok::Text(c.to_string()),
            };
            (t, 1)
        };
        toks.push(tok);
        i += len;
    }
    if toks.iter().filter(|t| **t == Tok::Point).count() > 1 {
        return Err(syntax("multiple decimal points"));
    }
    if toks.contains(&Tok::Point) && toks.contains(&Tok::Shift) {
        return Err(syntax("cannot use \"V\" and decimal point together"));
    }
    let signs = toks
        .iter()
        .filter(|t| {
            matches!(
                t,
                Tok::Sign | Tok::Minus | Tok::Plus | Tok::SignAlways | Tok::Angle
            )
        })
        .count();
    if toks.contains(&Tok::Angle) && signs > 1 {
        return Err(syntax(
            "cannot use \"PR\" and \"S\"/\"PL\"/\"MI\"/\"SG\" together",
        ));
    }
    if let Some(p) = toks.iter().position(|t| *t == Tok::Angle) {
        if toks[p + 1..].iter().any(|t| matches!(t, Tok::Digit(_))) {
            return Err(syntax("\"9\" must be ahead of \"PR\""));
        }
    }
    if toks.contains(&Tok::Sci)
        && (fm
            || toks
                .iter()
                .any(|t| !matches!(t, Tok::Digit(_) | Tok::Point | Tok::Sci)))
    {
        return Err(syntax("\"EEEE\" is incompatible with other formats"));
    }
    Ok((toks, fm))
}

/// `(negative, integer digits without leading zeros, fraction digits)` of
/// `n × 10^shift` rounded to `post` fraction digits; `None` if it does not
/// fit (or is not finite).
fn digits(n: Number, shift: u32, post: usize) -> Option<(bool, String, String)> {
    let (neg, all) = match n {
        Number::Decimal { digits, scale } => {
            let e = post as i32 + shift as i32 - scale;
            let v = if e >= 0 {
                digits.checked_mul(10i128.checked_pow(e as u32)?)?
            } else {
                let d = 10i128.checked_pow((-e) as u32).unwrap_or(i128::MAX);
                let (q, r) = (digits / d, digits % d);
                // Half away from zero.
                if r.unsigned_abs() * 2 >= d.unsigned_abs() {
                    q + digits.signum()
                } else {
                    q
                }
            };
            (v < 0, v.unsigned_abs().to_string())
        }
        Number::Float(f) => {
            let f = f * 10f64.powi(shift as i32);
            if !f.is_finite() {
                return None;
            }
            let s = format!("{:.*}", post, f.abs());
            let all: String = s.chars().filter(|c| *c != '.').collect();
            // A float keeps its sign when it rounds to zero (PostgreSQL
            // tests the value, not the rounded text).
            return Some(split(all, post, f < 0.0, false));
        }
    };
    Some(split(all, post, neg, true))
}

/// Splits the digits of a number times `10^post` into integer digits
/// (without leading zeros) and `post` fraction digits; a `neg`ative number
/// that is zero loses its sign when `zero_unsigned`.
fn split(all: String, post: usize, neg: bool, zero_unsigned: bool) -> (bool, String, String) {
    let all = format!("{all:0>width$}", width = post + 1);
    let (int, frac) = all.split_at(all.len() - post);
    let int = int.trim_start_matches('0').to_string();
    let zero = int.is_empty() && frac.bytes().all(|b| b == b'0');
    (neg && !(zero && zero_unsigned), int, frac.to_string())
}

/// The ordinal suffix of the integer digits `int`.
fn ordinal(int: &str, upper: bool) -> &'static str {
    let n: i64 = int
        .get(int.len().saturating_sub(2)..)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    crate::to_char::ordinal_suffix(n, upper)
}

fn roman(n: Number, lower: bool, fm: bool) -> String {
    let v = digits(n, 0, 0)
        .filter(|(neg, _, _)| !neg)
        .and_then(|(_, int, _)| int.parse::<u32>().ok())
        .filter(|v| (1..=3999).contains(v));
    let Some(mut v) = v else {
        return "#".repeat(15);
    };
    const TABLE: [(u32, &str); 13] = [
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ];
    let mut s = String::new();
    for (n, r) in TABLE {
        while v >= n {
            s.push_str(r);
            v -= n;
        }
    }
    if lower {
        s = s.to_lowercase();
    }
    if fm {
        s
    } else {
        format!("{s:>15}")
    }
}

/// `9.99EEEE`: a sign position, the mantissa with the template's fraction
/// digits, and a two-digit (at least) signed exponent.
fn scientific(n: Number, post: usize) -> String {
    let f = match n {
        Number::Decimal { digits, scale } => digits as f64 / 10f64.powi(scale),
        Number::Float(f) => f,
    };
    if !f.is_finite() {
        return format!(" {}", "#".repeat(post + 5 + usize::from(post > 0)));
    }
    let exp = if f == 0.0 {
        0
    } else {
        f.abs().log10().floor() as i32
    };
    let mantissa = f / 10f64.powi(exp);
    let m = match n {
        Number::Decimal { .. } => {
            let scaled =
                (mantissa.abs() * 10f64.powi(post as i32)).round() / 10f64.powi(post as i32);
            format!("{:.*}", post, scaled)
        }
        Number::Float(_) => format!("{:.*}", post, mantissa.abs()),
    };
    let sign = if f < 0.0 { '-' } else { ' ' };
    let es = if exp < 0 { '-' } else { '+' };
    format!("{sign}{m}e{es}{:02}", exp.abs())
}

/// Formats `n` by `template` as PostgreSQL's `to_char` does.
pub fn format(n: Number, template: &str) -> Result<String, PlannerError> {
    let (toks, fm) = parse(template)?;
    if let Some(Tok::Roman { lower }) = toks.iter().find(|t| matches!(t, Tok::Roman { .. })) {
        return Ok(roman(n, *lower, fm));
    }
    let point = toks.iter().position(|t| *t == Tok::Point);
    let shift_at = toks.iter().position(|t| *t == Tok::Shift);
    let is_digit = |t: &Tok| matches!(t, Tok::Digit(_));
    let (pre, post) = match point {
        Some(p) => (
            toks[..p].iter().filter(|t| is_digit(t)).count(),
            toks[p..].iter().filter(|t| is_digit(t)).count(),
        ),
        None => (toks.iter().filter(|t| is_digit(t)).count(), 0),
    };
    if toks.contains(&Tok::Sci) {
        return Ok(scientific(n, post));
    }
    let shift = shift_at
        .map(|v| toks[v..].iter().filter(|t| is_digit(t)).count() as u32)
        .unwrap_or(0);
    let pre_digits: Vec<bool> = toks
        .iter()
        .take(point.unwrap_or(toks.len()))
        .filter_map(|t| match t {
            Tok::Digit(z) => Some(*z),
            _ => None,
        })
        .collect();
    let post_digits: Vec<bool> = match point {
        Some(p) => toks[p..]
            .iter()
            .filter_map(|t| match t {
                Tok::Digit(z) => Some(*z),
                _ => None,
            })
            .collect(),
        None => vec![],
    };
    let zero_start = pre_digits.iter().position(|z| *z);
    let last_zero_post = post_digits.iter().rposition(|z| *z);
    let (neg, mut int, frac, overflow) = match digits(n, shift, post) {
        Some((neg, int, frac)) if int.len() <= pre => (neg, int, frac, false),
        Some((neg, int, frac)) => (neg, int, frac, true),
        None => (false, String::new(), "0".repeat(post), true),
    };
    let mut keep_post = post;
    if fm {
        let floor = last_zero_post.map_or(0, |z| z + 1);
        while keep_post > floor && frac.as_bytes()[keep_post - 1] == b'0' {
            keep_post -= 1;
        }
    }
    if int.is_empty() && zero_start.is_none() && (post == 0 || (fm && keep_post == 0)) {
        int = "0".to_string();
    }
    // The sign written just before the number's first character, if any.
    let first_digit = toks.iter().position(is_digit);
    let leading_s = toks
        .iter()
        .position(|t| *t == Tok::Sign)
        .is_some_and(|s| first_digit.is_none_or(|d| s < d));
    let explicit = toks
        .iter()
        .any(|t| matches!(t, Tok::Sign | Tok::Minus | Tok::SignAlways | Tok::Angle));
    let anchored: Option<&str> = if toks.contains(&Tok::Angle) {
        match (neg, fm) {
            (true, _) => Some("<"),
            (false, false) => Some(" "),
            (false, true) => None,
        }
    } else if leading_s {
        Some(if neg { "-" } else { "+" })
    } else if explicit {
        None
    } else {
        match (neg, fm) {
            (true, _) => Some("-"),
            (false, false) => Some(" "),
            (false, true) => None,
        }
    };
    let mut out = String::new();
    let mut sign_done = anchored.is_none();
    let write_sign = |out: &mut String, sign_done: &mut bool| {
        if !*sign_done {
            out.push_str(anchored.unwrap_or(""));
            *sign_done = true;
        }
    };
    let offset = pre as isize - int.len() as isize;
    let (mut k, mut j) = (0usize, 0usize);
    let mut started = false;
    let mut after_point = false;
    for t in &toks {
        match t {
            Tok::Digit(_) if !after_point => {
                let ch = if overflow {
                    Some('#')
                } else if k as isize >= offset {
                    int.chars().nth((k as isize - offset) as usize)
                } else if zero_start.is_some_and(|z| k >= z) {
                    Some('0')
                } else {
                    None
                };
                match ch {
                    Some(c) => {
                        write_sign(&mut out, &mut sign_done);
                        out.push(c);
                        started = true;
                    }
                    None if !fm => out.push(' '),
                    None => {}
                }
                k += 1;
            }
            Tok::Digit(_) => {
                if overflow {
                    out.push('#');
                } else if j < keep_post {
                    out.push(frac.as_bytes()[j] as char);
                }
                j += 1;
            }
            Tok::Point => {
                // A point with no digit position after it is not printed.
                if post > 0 {
                    write_sign(&mut out, &mut sign_done);
                    out.push('.');
                }
                after_point = true;
            }
            Tok::Group => {
                if started || after_point {
                    out.push(',');
                } else if !fm {
                    out.push(' ');
                }
            }
            Tok::Sign => {
                if !leading_s {
                    out.push(if neg { '-' } else { '+' });
                }
            }
            Tok::Minus => match (neg, fm) {
                (true, _) => out.push('-'),
                (false, false) => out.push(' '),
                (false, true) => {}
            },
            Tok::Plus => match (neg, fm) {
                (false, _) => out.push('+'),
                (true, false) => out.push(' '),
                (true, true) => {}
            },
            Tok::SignAlways => out.push(if neg { '-' } else { '+' }),
            Tok::Angle => match (neg, fm) {
                (true, _) => out.push('>'),
                (false, false) => out.push(' '),
                (false, true) => {}
            },
            Tok::Currency => out.push(' '),
            Tok::Ordinal { upper } => {
                if !neg && !overflow && post == 0 {
                    out.push_str(ordinal(&int, *upper));
                }
            }
            Tok::Text(s) => out.push_str(s),
            Tok::Shift | Tok::Blank | Tok::Sci | Tok::Roman { .. } => {}
        }
    }
    write_sign(&mut out, &mut sign_done);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Number {
        let scale = s.split('.').nth(1).map_or(0, |f| f.len() as i32);
        let digits: i128 = s.replace('.', "").parse().unwrap();
        Number::Decimal { digits, scale }
    }

    /// Each expected text is PostgreSQL 15's.
    #[test]
    fn templates_as_postgres() {
        let cases: &[(&str, &str, &str)] = &[
            ("0", "999", "   0"),
            ("0", "9.99", "  .00"),
            ("0.5", "999.99", "    .50"),
            ("-0.5", "999.99", "   -.50"),
            ("0.5", "0.99", " 0.50"),
            ("12", "0999", " 0012"),
            ("-12", "0999", "-0012"),
            ("12", "9099", "  012"),
            ("1234", "99", " ##"),
            ("1234.5", "99.9", " ##.#"),
            ("1234567", "9,999,999", " 1,234,567"),
            ("12", "9,999", "    12"),
            ("12", "FM9,999", "12"),
            ("-12", "FM9,999", "-12"),
            ("12.5", "FM999.99", "12.5"),
            ("12", "FM999.99", "12."),
            ("12", "FM999.00", "12.00"),
            ("12", "FM999.90", "12.00"),
            ("-12", "S999", " -12"),
            ("12", "S999", " +12"),
            ("12", "999S", " 12+"),
            ("-12", "999S", " 12-"),
            ("-12", "MI999", "- 12"),
            ("12", "MI999", "  12"),
            ("-12", "999MI", " 12-"),
            ("-12", "999PR", " <12>"),
            ("12", "999PR", "  12 "),
            ("12", "PL999", "+  12"),
            ("-12", "PL999", "  -12"),
            ("12", "SG999", "+ 12"),
            ("-12", "SG999", "- 12"),
            ("12", "999th", "  12th"),
            ("12", "FM999TH", "12TH"),
            ("1", "FM999th", "1st"),
            ("485", "RN", "        CDLXXXV"),
            ("485", "FMRN", "CDLXXXV"),
            ("485", "rn", "        cdlxxxv"),
            ("12", "99V99", " 1200"),
            ("12.345", "99V99", " 1235"),
            ("0.000485", "9.99EEEE", " 4.85e-04"),
            ("-1234.5", "9.9EEEE", "-1.2e+03"),
            ("1234.5", "\"Total: \"9999.9", "Total:  1234.5"),
            ("1234.5", "9G999D99", " 1,234.50"),
            ("1234.5", "L9999", "  1235"),
            ("2.5", "9", " 3"),
            ("-0.0001", "9.99", "  .00"),
            ("100", "FM9999", "100"),
            ("0", "FM9999", "0"),
            ("0", "FM9999.99", "0."),
            ("0.1", "FM9999.99", ".1"),
            ("123", "x999y", "x 123y"),
            ("-123.456", "999.999", "-123.456"),
            ("12", "9 9 9", "   1 2"),
            ("1234", "9 9 9 9", " 1 2 3 4"),
            ("12", "FM999MI", "12"),
            ("-12", "FMPL999", "-12"),
            ("12", "FMPL999", "+12"),
            ("12", "FMS999", "+12"),
            ("-12", "FM999S", "12-"),
            ("12", "FML999", " 12"),
            ("-1234", "9,999", "-1,234"),
            ("12", "0,000", " 0,012"),
            ("12", "9D99", " #.##"),
            ("12.3", "FM0.9", "#.#"),
            ("4000", "RN", "###############"),
            ("3.6", "FMRN", "IV"),
            ("-12", "999th", " -12"),
            ("11", "FM99th", "11th"),
            ("22", "FM99TH", "22ND"),
            ("103", "FM999th", "103rd"),
            ("12", "999.99PR", "  12.00 "),
            ("-0.5", "FM990.99", "-0.5"),
            ("5", "FM00", "05"),
            ("5", "00", " 05"),
            ("0", "9.99EEEE", " 0.00e+00"),
            ("12345", "99.9EEEE", " 1.2e+04"),
            ("1.5", "9EEEE", " 2e+00"),
            ("-0.000123", "9.9EEEE", "-1.2e-04"),
            ("12", "9,999.9", "    12.0"),
            ("1234567", "FM9G999G999", "1,234,567"),
            ("12.5", "99th", " 13th"),
            ("9.5", "0G999.", " 0,010"),
            ("0.05", "PL99999,.", "+     0,"),
        ];
        let mut wrong = Vec::new();
        for (v, t, want) in cases {
            let got = format(dec(v), t).unwrap();
            if got != *want {
                wrong.push(format!("to_char({v}, '{t}'): [{got}], PostgreSQL [{want}]"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        assert_eq!(format(Number::Float(2.5), "9").unwrap(), " 2");
        assert_eq!(format(Number::Float(3.5), "9").unwrap(), " 4");
        assert_eq!(format(Number::Float(12.0), "999.999").unwrap(), "  12.000");
        assert_eq!(format(Number::Float(-0.005), "MI099,V9").unwrap(), "-000,0");
        assert!(format(dec("1"), "9.9.9").is_err());
        assert!(format(dec("1"), "PR999").is_err());
        assert!(format(dec("1"), "FM9EEEE").is_err());
    }
}
