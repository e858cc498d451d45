//! Text that comes from outside phasebox, made safe to print. Program paths and comms are
//! chosen by whoever runs the traced program, and names in profiles, rule files, scenario sets
//! and trace files by whoever wrote them: a terminal must never receive their control
//! characters (escape sequences can rewrite the screen, set the window title or fake lines), and
//! a table must never ask the formatter for a width it cannot give (`{:<width$}` panics above
//! 65,535).
use std::borrow::Cow;
use std::fmt::Write as _;

/// The widest a table's name column grows; a longer name overflows its column.
pub const MAX_COLUMN: usize = 64;
/// The most characters of one name printed; a longer name is cut, with its length said.
pub const MAX_NAME: usize = 256;

/// Whether `c` must not reach a terminal as it is: control characters (C0, DEL, C1) and the
/// invisible marks that reorder text (bidirectional overrides and isolates).
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` for a terminal: control characters written as escapes (`\n`, `\t`, `\u{1b}`), and at
/// most [`MAX_NAME`] characters (a longer one is cut and says how long it was). Borrowed when
/// nothing had to change.
pub fn text(s: &str) -> Cow<'_, str> {
    let long = s.len() > MAX_NAME && s.chars().nth(MAX_NAME).is_some();
    if !long && !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(4 * MAX_NAME));
    for c in s.chars().take(MAX_NAME) {
        if hidden(c) {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    if long {
        let _ = write!(out, "… ({} characters)", s.chars().count());
    }
    Cow::Owned(out)
}

/// Every name of `names` made safe with [`text`], joined by `sep`.
pub fn join<S: AsRef<str>>(names: &[S], sep: &str) -> String {
    let v: Vec<Cow<str>> = names.iter().map(|n| text(n.as_ref())).collect();
    v.join(sep)
}

/// The width of a column holding `cells` (as printed): the widest one, at least `min`, at most
/// [`MAX_COLUMN`].
pub fn column<'a>(cells: impl IntoIterator<Item = &'a str>, min: usize) -> usize {
    cells
        .into_iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(min, MAX_COLUMN.max(min))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert!(matches!(text("/usr/bin/pwd"), Cow::Borrowed(_)));
        assert_eq!(text("a\x1b]0;pwned\x07b"), "a\\u{1b}]0;pwned\\u{7}b");
        assert_eq!(text("two\nlines\ttab"), "two\\nlines\\ttab");
        assert_eq!(text("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(text("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        // Printable text outside ASCII stays as it is.
        assert_eq!(text("café ☕"), "café ☕");
        assert_eq!(join(&["a\nb", "c"], " "), "a\\nb c");
    }

    #[test]
    fn long_names_are_cut_and_say_their_length() {
        let long = "x".repeat(70_000);
        let t = text(&long);
        assert!(t.starts_with(&"x".repeat(MAX_NAME)), "{t}");
        assert!(t.ends_with("… (70000 characters)"), "{t}");
        assert_eq!(
            t.chars().count(),
            MAX_NAME + "… (70000 characters)".chars().count()
        );
        // Exactly MAX_NAME characters (multi-byte ones too) are kept whole.
        let edge = "é".repeat(MAX_NAME);
        assert_eq!(text(&edge), edge);
    }

    #[test]
    fn columns_are_bounded() {
        let long = "p".repeat(70_000);
        assert_eq!(column([long.as_str(), "a"], 5), MAX_COLUMN);
        assert_eq!(column(["ab", "abc"], 5), 5);
        assert_eq!(column(["abcdefgh", "é"], 5), 8);
        assert_eq!(column(std::iter::empty(), 5), 5);
        // A table of such names formats without a panic.
        let w = column([long.as_str()], 5);
        assert!(format!("{:<w$}|", text(&long)).ends_with("characters)|"));
    }
}
