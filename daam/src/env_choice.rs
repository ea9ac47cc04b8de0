//! Settings read from environment variables that name one of a few choices (`DAAM_CONV`,
//! `DAAM_UNFOLD`, `DAAM_FOLD`, `DAAM_MIXTURE`, `DAAM_KERNELS`): any case, surrounding spaces
//! ignored; a value naming none of them gets a warning on stderr and the default.

use std::fmt::Write as _;

/// The choice `value` names among `choices` (any case, spaces trimmed); `None` for anything
/// else or nothing.
pub(crate) fn parse<T: Copy>(value: Option<&str>, choices: &[(&str, T)]) -> Option<T> {
    let value = value?.trim();
    choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|&(_, choice)| choice)
}

/// The choice `var` names, else `default`; a value that names none of `choices` is warned about
/// on stderr (`DAAM_UNFOLD="fast" is none of gather, slices: using gather`).
pub(crate) fn from_env<T: Copy + PartialEq>(var: &str, choices: &[(&str, T)], default: T) -> T {
    let Ok(value) = std::env::var(var) else {
        return default;
    };
    parse(Some(&value), choices).unwrap_or_else(|| {
        eprintln!("{}", warning(var, &value, choices, default));
        default
    })
}

/// The warning of [`from_env`] for `value`.
fn warning<T: PartialEq>(var: &str, value: &str, choices: &[(&str, T)], default: T) -> String {
    let mut names = String::new();
    for (i, (name, _)) in choices.iter().enumerate() {
        let _ = write!(names, "{}{name}", if i == 0 { "" } else { ", " });
    }
    let used = choices
        .iter()
        .find(|(_, choice)| *choice == default)
        .map_or("the default", |(name, _)| name);
    format!("{var}={value:?} is none of {names}: using {used}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHOICES: [(&str, u8); 2] = [("gather", 1), ("slices", 2)];

    #[test]
    fn values_parse_in_any_case_and_others_are_named() {
        assert_eq!(parse(Some(" Slices "), &CHOICES), Some(2));
        assert_eq!(parse(Some("gather"), &CHOICES), Some(1));
        assert_eq!(parse(Some("fast"), &CHOICES), None);
        assert_eq!(parse(None, &CHOICES), None);
        assert_eq!(
            warning("DAAM_UNFOLD", "fast", &CHOICES, 1),
            "DAAM_UNFOLD=\"fast\" is none of gather, slices: using gather"
        );
    }
}
