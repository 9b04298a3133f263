//! The on-screen keyboard: a grid navigated with the arrows, OK types the highlighted key.
//! Letters, digits and the symbols the password policy asks for; Shift for capitals.

/// Character rows (lower case; Shift gives the upper case of letters).
const ROWS: [&str; 5] = [
    "1234567890",
    "qwertyuiop",
    "asdfghjkl@",
    "zxcvbnm.-_",
    "!#$%&*+?=/",
];
/// Width of a character row, in keys.
const COLUMNS: usize = 10;
/// The bottom row: wide keys.
const SPECIAL: [Special; 4] = [
    Special::Shift,
    Special::Space,
    Special::Delete,
    Special::Done,
];

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

/// Highlight position and Shift state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keyboard {
    row: usize,
    col: usize,
    shift: bool,
}

fn special_width() -> f32 {
    COLUMNS as f32 / SPECIAL.len() as f32
}

impl Keyboard {
    /// Highlight moves; it wraps around at the edges like TV keyboards do.
    pub fn up(&mut self) {
        self.move_to_row((self.row + ROWS.len()) % (ROWS.len() + 1));
    }

    /// Down one row.
    pub fn down(&mut self) {
        self.move_to_row((self.row + 1) % (ROWS.len() + 1));
    }

    /// Left one key.
    pub fn left(&mut self) {
        let n = self.row_len();
        self.col = (self.col + n - 1) % n;
    }

    /// Right one key.
    pub fn right(&mut self) {
        self.col = (self.col + 1) % self.row_len();
    }

    /// Puts the highlight on Done (after a digit typed with the remote, for example).
    pub fn select_done(&mut self) {
        self.row = ROWS.len();
        self.col = SPECIAL.len() - 1;
    }

    /// Back to the top-left key (a new form).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Whether Shift is on.
    pub fn shift(&self) -> bool {
        self.shift
    }

    fn on_special_row(&self) -> bool {
        self.row == ROWS.len()
    }

    fn row_len(&self) -> usize {
        if self.on_special_row() {
            SPECIAL.len()
        } else {
            COLUMNS
        }
    }

    // Columns map by position, so moving between the narrow and the wide row keeps the
    // highlight roughly above/below where it was.
    fn move_to_row(&mut self, row: usize) {
        let from_special = self.on_special_row();
        self.row = row;
        match (from_special, self.on_special_row()) {
            (false, true) => self.col = (self.col as f32 / special_width()) as usize,
            (true, false) => self.col = ((self.col as f32 + 0.5) * special_width()) as usize,
            _ => {}
        }
        self.col = self.col.min(self.row_len() - 1);
    }

    /// OK on the highlighted key. Shift toggles here and turns off after one letter.
    pub fn press(&mut self) -> Press {
        if self.on_special_row() {
            let key = SPECIAL[self.col];
            if key == Special::Shift {
                self.shift = !self.shift;
            }
            return Press::Special(key);
        }
        let c = ROWS[self.row].chars().nth(self.col).unwrap_or(' ');
        if self.shift && c.is_ascii_alphabetic() {
            self.shift = false;
            return Press::Char(c.to_ascii_uppercase());
        }
        Press::Char(c)
    }

    /// Every key with its place, for drawing.
    pub fn caps(&self, done_label: &str) -> Vec<Cap> {
        let mut caps = Vec::with_capacity(ROWS.len() * COLUMNS + SPECIAL.len());
        for (r, row) in ROWS.iter().enumerate() {
            for (c, ch) in row.chars().enumerate() {
                let ch = if self.shift {
                    ch.to_ascii_uppercase()
                } else {
                    ch
                };
                caps.push(Cap {
                    label: ch.to_string(),
                    x: c as f32,
                    y: r as f32,
                    width: 1.0,
                    selected: self.row == r && self.col == c,
                });
            }
        }
        for (c, key) in SPECIAL.iter().enumerate() {
            let label = match key {
                Special::Shift if self.shift => "SHIFT ON",
                Special::Shift => "Shift",
                Special::Space => "Space",
                Special::Delete => "Delete",
                Special::Done => done_label,
            };
            caps.push(Cap {
                label: label.to_owned(),
                x: c as f32 * special_width(),
                y: ROWS.len() as f32,
                width: special_width(),
                selected: self.on_special_row() && self.col == c,
            });
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
        assert!(kb.on_special_row());
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
}
