//! The on-screen keyboard: a grid navigated with the arrows, OK types the highlighted key.
//! Letters, digits and the symbols the password policy asks for; Shift for capitals.

/// Character rows of the text layout (lower case; Shift gives the upper case of letters).
const ROWS: [&str; 5] = [
    "1234567890",
    "qwertyuiop",
    "asdfghjkl@",
    "zxcvbnm.-_",
    "!#$%&*+?=/",
];
/// The bottom row of the text layout: wide keys.
const SPECIAL: [Special; 4] = [
    Special::Shift,
    Special::Space,
    Special::Delete,
    Special::Done,
];
/// The digit pad's rows above its bottom row (Delete, 0, Done).
const DIGIT_ROWS: [&str; 3] = ["123", "456", "789"];
/// Width of every row, in character-key units: a row of fewer keys has wider keys.
const COLUMNS: usize = 10;

/// A key of the bottom row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// Capitals for the next letters.
    Shift,
    /// A space.
    Space,
    /// Erase the last character.
    Delete,
    /// Next field, or submit.
    Done,
}

/// What pressing OK on the highlighted key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    /// Type this character.
    Char(char),
    /// A bottom-row key.
    Special(Special),
}

/// One key as the screen draws it, in grid units (a character key is 1 wide).
#[derive(Debug, Clone, PartialEq)]
pub struct Cap {
    /// Label.
    pub label: String,
    /// Column, in character-key units.
    pub x: f32,
    /// Row.
    pub y: f32,
    /// Width, in character-key units.
    pub width: f32,
    /// Highlighted.
    pub selected: bool,
}

/// Which keys the keyboard shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Layout {
    /// Letters, digits and symbols, Shift and Space.
    #[default]
    Text,
    /// A phone-style pad for numbers (the enrollment code).
    Digits,
}

/// Highlight position, Shift state and layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keyboard {
    row: usize,
    col: usize,
    shift: bool,
    layout: Layout,
}

/// The keys of `layout`, row by row.
fn grid(layout: Layout) -> Vec<Vec<Press>> {
    let chars = |rows: &[&str]| -> Vec<Vec<Press>> {
        rows.iter()
            .map(|r| r.chars().map(Press::Char).collect())
            .collect()
    };
    let mut rows;
    match layout {
        Layout::Text => {
            rows = chars(&ROWS);
            rows.push(SPECIAL.map(Press::Special).to_vec());
        }
        Layout::Digits => {
            rows = chars(&DIGIT_ROWS);
            rows.push(vec![
                Press::Special(Special::Delete),
                Press::Char('0'),
                Press::Special(Special::Done),
            ]);
        }
    }
    rows
}

/// Width of each key of a row of `keys` keys, in character-key units.
fn key_width(keys: usize) -> f32 {
    COLUMNS as f32 / keys as f32
}

impl Keyboard {
    /// A keyboard with `layout`, highlight at the top left.
    pub fn with_layout(layout: Layout) -> Self {
        Self {
            layout,
            ..Self::default()
        }
    }

    /// The layout shown.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Highlight moves; it wraps around at the edges like TV keyboards do.
    pub fn up(&mut self) {
        let n = grid(self.layout).len();
        self.move_to_row((self.row + n - 1) % n);
    }

    /// Down one row.
    pub fn down(&mut self) {
        let n = grid(self.layout).len();
        self.move_to_row((self.row + 1) % n);
    }

    /// Left one key.
    pub fn left(&mut self) {
        let n = self.row_len(self.row);
        self.col = (self.col + n - 1) % n;
    }

    /// Right one key.
    pub fn right(&mut self) {
        self.col = (self.col + 1) % self.row_len(self.row);
    }

    /// Puts the highlight on Done (after a digit typed with the remote, for example).
    pub fn select_done(&mut self) {
        let rows = grid(self.layout);
        self.row = rows.len() - 1;
        self.col = rows[self.row].len() - 1;
    }

    /// Back to the top-left key of the same layout (a new form).
    pub fn reset(&mut self) {
        *self = Self::with_layout(self.layout);
    }

    /// Whether Shift is on.
    pub fn shift(&self) -> bool {
        self.shift
    }

    fn row_len(&self, row: usize) -> usize {
        grid(self.layout)[row].len()
    }

    // Columns map by position, so moving between rows of different widths keeps the
    // highlight roughly above/below where it was.
    // Onto wider keys the key's left edge decides, onto narrower ones its centre (the remote
    // test in packaging/vm/system_test.py walks the grid by the same rule).
    fn move_to_row(&mut self, row: usize) {
        let from = key_width(self.row_len(self.row));
        self.row = row;
        let n = self.row_len(row);
        let to = key_width(n);
        let at = if to > from {
            self.col as f32 * from
        } else {
            (self.col as f32 + 0.5) * from
        };
        self.col = ((at / to) as usize).min(n - 1);
    }

    /// OK on the highlighted key. Shift toggles here and turns off after one letter.
    pub fn press(&mut self) -> Press {
        let key = grid(self.layout)[self.row][self.col];
        match key {
            Press::Special(Special::Shift) => self.shift = !self.shift,
            Press::Char(c) if self.shift && c.is_ascii_alphabetic() => {
                self.shift = false;
                return Press::Char(c.to_ascii_uppercase());
            }
            _ => {}
        }
        key
    }

    /// Every key with its place, for drawing.
    pub fn caps(&self, done_label: &str) -> Vec<Cap> {
        let mut caps = Vec::new();
        for (r, row) in grid(self.layout).iter().enumerate() {
            let width = key_width(row.len());
            for (c, key) in row.iter().enumerate() {
                let label = match key {
                    Press::Char(ch) if self.shift => ch.to_ascii_uppercase().to_string(),
                    Press::Char(ch) => ch.to_string(),
                    Press::Special(Special::Shift) if self.shift => "SHIFT ON".into(),
                    Press::Special(Special::Shift) => "Shift".into(),
                    Press::Special(Special::Space) => "Space".into(),
                    Press::Special(Special::Delete) => "Delete".into(),
                    Press::Special(Special::Done) => done_label.into(),
                };
                caps.push(Cap {
                    label,
                    x: c as f32 * width,
                    y: r as f32,
                    width,
                    selected: self.row == r && self.col == c,
                });
            }
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_word(kb: &mut Keyboard, word: &str) -> String {
        // Walks the grid like a person would: find the key, move there, press OK.
        let mut out = String::new();
        for target in word.chars() {
            if target.is_ascii_uppercase() {
                while kb.row != ROWS.len() || kb.col != 0 {
                    if kb.row != ROWS.len() {
                        kb.down();
                    } else {
                        kb.left();
                    }
                }
                assert_eq!(kb.press(), Press::Special(Special::Shift));
            }
            let lower = target.to_ascii_lowercase();
            let (r, c) = ROWS
                .iter()
                .enumerate()
                .find_map(|(r, row)| row.chars().position(|x| x == lower).map(|c| (r, c)))
                .expect("key exists");
            while kb.row != r {
                kb.down();
            }
            while kb.col != c {
                kb.right();
            }
            if let Press::Char(ch) = kb.press() {
                out.push(ch);
            }
        }
        out
    }

    #[test]
    fn every_character_of_a_policy_password_can_be_typed() {
        let mut kb = Keyboard::default();
        assert_eq!(type_word(&mut kb, "Sofa-Remote#2026!"), "Sofa-Remote#2026!");
        assert!(!kb.shift(), "Shift turns off after one letter");
    }

    #[test]
    fn arrows_wrap_and_cross_the_wide_row() {
        let mut kb = Keyboard::default();
        kb.left();
        assert_eq!(kb.press(), Press::Char('0'));
        kb.up(); // from the top row to the bottom (special) row
        assert_eq!(kb.row, ROWS.len());
        assert_eq!(kb.press(), Press::Special(Special::Done));
        kb.down(); // wraps to the top row, under Done
        assert_eq!(kb.row, 0);
        assert!(kb.col >= 7, "column {} should sit under Done", kb.col);
        kb.select_done();
        assert_eq!(kb.press(), Press::Special(Special::Done));
        let caps = kb.caps("Log in");
        assert_eq!(caps.len(), 54);
        assert_eq!(caps.iter().filter(|c| c.selected).count(), 1);
        assert!(caps.iter().any(|c| c.label == "Log in" && c.selected));
    }

    #[test]
    fn the_digit_pad_types_digits_and_reaches_done() {
        let mut kb = Keyboard::with_layout(Layout::Digits);
        assert_eq!(kb.press(), Press::Char('1'));
        kb.down();
        kb.down();
        kb.right();
        assert_eq!(kb.press(), Press::Char('8'));
        kb.down();
        assert_eq!(kb.press(), Press::Char('0'), "under 8");
        kb.right();
        assert_eq!(kb.press(), Press::Special(Special::Done));
        kb.down(); // wraps to the top, under Done
        assert_eq!(kb.press(), Press::Char('3'));
        kb.reset();
        assert_eq!(kb.layout(), Layout::Digits);
        let caps = kb.caps("Next");
        assert_eq!(caps.len(), 12);
        assert!(caps.iter().all(|c| (c.width - 10.0 / 3.0).abs() < 1e-6));
    }
}
