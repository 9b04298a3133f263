//! The form screens: login (identifier, then password) and the registration wizard (code,
//! identifier, password, confirmation), typed on the on-screen keyboard or a real one.

use super::overlays::{Alert, retry_alert};
use super::{Effect, Model, Screen, Step, capitalise};
use crate::register::RegisterError;
use crate::remote::Action;
use crate::ui::keyboard::{Press, Special};
use stb_protocol::password::{PolicyViolation, check_policy, strength};
use stb_protocol::{Identifier, Password};
use zeroize::Zeroizing;

const MAX_IDENTIFIER: usize = 64;
const MAX_PASSWORD: usize = 128;
const MAX_CODE: usize = 14;

/// A text field of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldView {
    /// Label.
    pub label: String,
    /// Value as shown (masked for passwords).
    pub text: String,
    /// The field typing goes to.
    pub active: bool,
}

/// The form screens (login and the wizard) as drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormView {
    /// Headline.
    pub title: String,
    /// One line under the headline.
    pub subtitle: String,
    /// Fields.
    pub fields: Vec<FieldView>,
    /// Password strength 0-4, when a new password is being typed.
    pub strength: Option<u8>,
    /// Live advice or a validation error.
    pub message: String,
    /// Label of the keyboard's Done key.
    pub done_label: String,
    /// Remote hints.
    pub hint: String,
}

pub(super) struct Form {
    identifier: String,
    password: Zeroizing<String>,
    confirmation: Zeroizing<String>,
    code: String,
    message: String,
}

/// An empty password field with room for the longest password: a `String` that grew while
/// typing would move to a bigger buffer and free the old one unwiped, a copy of what was
/// typed so far. Reserved once, it never moves; `Zeroizing` wipes it when dropped.
fn secret_field() -> Zeroizing<String> {
    Zeroizing::new(String::with_capacity(MAX_PASSWORD * char::MAX.len_utf8()))
}

impl Default for Form {
    fn default() -> Self {
        Self {
            identifier: String::new(),
            password: secret_field(),
            confirmation: secret_field(),
            code: String::new(),
            message: String::new(),
        }
    }
}

impl Model {
    /// The form of the login or wizard screen.
    pub fn form(&self) -> Option<FormView> {
        let mask = |s: &str| "\u{2022}".repeat(s.chars().count());
        let field = |label: &str, text: String, active: bool| FieldView {
            label: label.to_owned(),
            text,
            active,
        };
        let nav = "Arrows move \u{00b7} OK types \u{00b7} Digits type digits \u{00b7} BACK erases";
        let f = &self.form;
        Some(match self.screen {
            Screen::Login => FormView {
                title: "Welcome".into(),
                subtitle: "Log in with your identifier and password".into(),
                fields: vec![
                    field("Identifier", f.identifier.clone(), !self.on_password),
                    field("Password", mask(&f.password), self.on_password),
                ],
                strength: None,
                message: f.message.clone(),
                done_label: if self.on_password { "Log in" } else { "Next" }.into(),
                hint: format!("{nav} \u{00b7} MENU registers this box"),
            },
            Screen::Register(step) => {
                let (subtitle, fields, done) = match step {
                    Step::Code => (
                        "Step 1 of 4: the 12-digit code from your operator",
                        vec![field("Enrollment code", f.code.clone(), true)],
                        "Next",
                    ),
                    Step::Identifier => (
                        "Step 2 of 4: choose your identifier",
                        vec![field("Identifier", f.identifier.clone(), true)],
                        "Next",
                    ),
                    Step::Password => (
                        "Step 3 of 4: choose a password",
                        vec![field("Password", mask(&f.password), true)],
                        "Next",
                    ),
                    Step::Confirm => (
                        "Step 4 of 4: the password again",
                        vec![
                            field("Password", mask(&f.password), false),
                            field("Again", mask(&f.confirmation), true),
                        ],
                        "Register",
                    ),
                };
                FormView {
                    title: "Register this box".into(),
                    subtitle: subtitle.into(),
                    fields,
                    strength: matches!(step, Step::Password | Step::Confirm)
                        .then(|| self.password_strength()),
                    message: f.message.clone(),
                    done_label: done.into(),
                    hint: format!("{nav} (on an empty field: the step before)"),
                }
            }
            _ => return None,
        })
    }

    fn identifier(&self) -> Option<Identifier> {
        Identifier::parse(&self.form.identifier).ok()
    }

    fn password_strength(&self) -> u8 {
        if self.form.password.is_empty() {
            return 0;
        }
        let password = Password::new(self.form.password.to_string());
        strength(&password, self.identifier().as_ref())
    }

    /// The first policy rule the new password breaks, checked against itself (not yet the
    /// confirmation).
    fn policy_advice(&self) -> Option<String> {
        let id = self.identifier()?;
        let password = Password::new(self.form.password.to_string());
        let same = Password::new(self.form.password.to_string());
        check_policy(&password, &same, &id)
            .err()
            .map(|e| e.to_string())
    }

    pub(super) fn active_text(&mut self) -> (&mut String, usize) {
        let f = &mut self.form;
        match self.screen {
            Screen::Login if self.on_password => (&mut f.password, MAX_PASSWORD),
            Screen::Register(Step::Code) => (&mut f.code, MAX_CODE),
            Screen::Register(Step::Password) => (&mut f.password, MAX_PASSWORD),
            Screen::Register(Step::Confirm) => (&mut f.confirmation, MAX_PASSWORD),
            _ => (&mut f.identifier, MAX_IDENTIFIER),
        }
    }

    pub(super) fn type_char(&mut self, c: char) {
        let (text, max) = self.active_text();
        if text.chars().count() < max {
            text.push(c);
        }
        self.refresh_advice();
    }

    pub(super) fn delete_char(&mut self) -> bool {
        let (text, _) = self.active_text();
        let deleted = text.pop().is_some();
        self.refresh_advice();
        deleted
    }

    /// The live message under the wizard's password fields.
    pub(super) fn refresh_advice(&mut self) {
        self.form.message = match self.screen {
            Screen::Register(Step::Password) if !self.form.password.is_empty() => self
                .policy_advice()
                .map_or_else(|| "Good password".into(), |r| capitalise(&r)),
            Screen::Register(Step::Confirm) if !self.form.confirmation.is_empty() => {
                if self.form.confirmation.as_str() == self.form.password.as_str() {
                    "The two passwords match".into()
                } else if self
                    .form
                    .password
                    .starts_with(self.form.confirmation.as_str())
                {
                    String::new()
                } else {
                    PolicyViolation::Mismatch.to_string()
                }
            }
            Screen::Register(_) | Screen::Login => String::new(),
            _ => return,
        };
    }

    pub(super) fn form_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        match action {
            Action::Up => self.keyboard.up(),
            Action::Down => self.keyboard.down(),
            Action::Left => self.keyboard.left(),
            Action::Right => self.keyboard.right(),
            Action::Digit(d) => self.type_char(char::from(b'0' + d)),
            Action::Delete => {
                self.delete_char();
            }
            // BACK erases; on an empty field it goes to the field or step before.
            Action::Back if !self.delete_char() => self.form_back(),
            Action::Ok => match self.keyboard.press() {
                Press::Char(c) => self.type_char(c),
                Press::Special(Special::Space) => self.type_char(' '),
                Press::Special(Special::Delete) => {
                    self.delete_char();
                }
                Press::Special(Special::Shift) => {}
                Press::Special(Special::Done) => self.form_done(fx),
            },
            Action::Menu if self.screen == Screen::Login => {
                self.form = Form::default();
                self.enter(Screen::Register(Step::Code));
            }
            _ => {}
        }
    }

    pub(super) fn enter(&mut self, screen: Screen) {
        self.screen = screen;
        self.keyboard.reset();
        self.refresh_advice();
    }

    /// BACK on an empty field: the previous field or step.
    pub(super) fn form_back(&mut self) {
        match self.screen {
            Screen::Login => self.on_password = false,
            Screen::Register(Step::Code) => {
                self.form = Form::default();
                self.enter(Screen::Login);
            }
            Screen::Register(Step::Identifier) => self.enter(Screen::Register(Step::Code)),
            Screen::Register(Step::Password) => self.enter(Screen::Register(Step::Identifier)),
            Screen::Register(Step::Confirm) => self.enter(Screen::Register(Step::Password)),
            _ => {}
        }
    }

    pub(super) fn form_done(&mut self, fx: &mut Vec<Effect>) {
        match self.screen {
            Screen::Login if !self.on_password => {
                self.on_password = true;
                self.keyboard.reset();
            }
            Screen::Login => self.submit_login(fx),
            Screen::Register(Step::Code) => {
                match stb_protocol::enrollment_code::normalise(&self.form.code) {
                    Ok(code) => {
                        self.form.code = stb_protocol::enrollment_code::display(&code);
                        self.enter(Screen::Register(Step::Identifier));
                    }
                    Err(e) => self.form.message = capitalise(&e.to_string()),
                }
            }
            Screen::Register(Step::Identifier) => match Identifier::parse(&self.form.identifier) {
                Ok(_) => self.enter(Screen::Register(Step::Password)),
                Err(e) => self.form.message = capitalise(&e.to_string()),
            },
            Screen::Register(Step::Password) => match self.policy_advice() {
                None => {
                    self.form.confirmation = secret_field();
                    self.enter(Screen::Register(Step::Confirm));
                }
                Some(reason) => self.form.message = capitalise(&reason),
            },
            Screen::Register(Step::Confirm) => {
                if self.form.confirmation.as_str() != self.form.password.as_str() {
                    self.form.message = capitalise(&PolicyViolation::Mismatch.to_string());
                    return;
                }
                let form = std::mem::take(&mut self.form);
                self.form.identifier = form.identifier.clone();
                self.busy = Some("Registering this box\u{2026}".into());
                fx.push(Effect::Register {
                    code: form.code.replace('-', ""),
                    identifier: form.identifier,
                    password: Password::new(form.password.to_string()),
                    confirmation: Password::new(form.confirmation.to_string()),
                });
            }
            _ => {}
        }
    }

    pub(super) fn submit_login(&mut self, fx: &mut Vec<Effect>) {
        if self.retry_until_countdown > 0 {
            self.alert = Some(retry_alert(self.retry_until_countdown));
            return;
        }
        if self.form.identifier.trim().is_empty() {
            self.on_password = false;
            self.form.message = "Type your identifier first".into();
            return;
        }
        // The typed buffer itself moves into the password (no copy); the field gets a new one.
        let password = Password::new(std::mem::take(&mut *self.form.password));
        self.form.password = secret_field();
        self.form.message.clear();
        self.busy = Some("Checking your password\u{2026}".into());
        fx.push(Effect::Login {
            identifier: self.form.identifier.clone(),
            password,
        });
    }

    /// The registration finished: `Ok(account)` or the reason it failed.
    pub fn register_done(&mut self, result: Result<String, RegisterError>) -> Vec<Effect> {
        self.busy = None;
        match result {
            Ok(account) => {
                let identifier = std::mem::take(&mut self.form.identifier);
                self.form = Form::default();
                self.form.identifier = identifier;
                self.on_password = true;
                self.enter(Screen::Login);
                self.alert = Some(Alert::new(
                    "Box registered",
                    format!("Welcome, {account}. Log in with your identifier and new password."),
                ));
            }
            Err(e) => {
                self.enter(Screen::Register(Step::Code));
                self.alert = Some(registration_failed(&e));
            }
        }
        vec![]
    }
}

/// What the person on the sofa is told about a failed registration.
fn registration_failed(e: &RegisterError) -> Alert {
    let title = "Registration failed";
    match e {
        RegisterError::EnrollmentUnreachable(_) | RegisterError::KeyServerUnreachable => {
            Alert::new(
                title,
                format!(
                    "{}. Check the network cable, then try again.",
                    capitalise(&e.to_string())
                ),
            )
        }
        RegisterError::Configuration(_) | RegisterError::Keys(_) => Alert::new(
            title,
            format!("{}. Call your operator.", capitalise(&e.to_string())),
        ),
        // The operator's and the key server's reasons, and the policy's, are already words
        // for the person holding the remote.
        RegisterError::EnrollmentRefused(_)
        | RegisterError::EnrollmentAnswer(_)
        | RegisterError::Identifier(_)
        | RegisterError::Policy(_)
        | RegisterError::KeyServerRefused { .. } => Alert::new(title, capitalise(&e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;
    use super::MAX_PASSWORD;
    use crate::keyserver_client::LoginError;
    use crate::register::RegisterError;

    #[test]
    fn login_moves_the_password_out_and_keeps_no_copy() {
        let mut m = Model::new(SessionRules::default());
        for c in "alice".chars() {
            m.typed(c);
        }
        m.done();
        for c in "Secret#1".chars() {
            m.typed(c);
        }
        let form = m.form().expect("form");
        assert_eq!(form.fields[1].text, "\u{2022}".repeat(8), "masked");
        let fx = m.done();
        match &fx[..] {
            [
                Effect::Login {
                    identifier,
                    password,
                },
            ] => {
                assert_eq!(identifier, "alice");
                assert_eq!(password.expose(), "Secret#1");
            }
            other => panic!("expected a login, got {other:?}"),
        }
        assert!(m.form.password.is_empty());
        assert!(m.busy().is_some());
        // Keys do nothing while busy.
        assert!(m.action(Action::Ok).is_empty());
    }

    #[test]
    fn retry_countdown_blocks_the_next_attempt_until_it_ends() {
        let mut m = Model::new(SessionRules::default());
        for c in "alice".chars() {
            m.typed(c);
        }
        m.done();
        m.typed('x');
        m.done();
        let fx = m.login_done(Err(LoginError::RetryIn(2)));
        assert!(armed(&fx, Timer::Countdown));
        assert_eq!(m.alert().and_then(|a| a.countdown), Some(2));
        m.action(Action::Back);
        m.typed('y');
        assert!(m.done().is_empty(), "no attempt while the countdown runs");
        assert_eq!(m.alert().and_then(|a| a.countdown), Some(2));
        assert!(armed(&m.timer(Timer::Countdown), Timer::Countdown));
        assert!(!armed(&m.timer(Timer::Countdown), Timer::Countdown));
        assert_eq!(
            m.alert().map(|a| a.detail.as_str()),
            Some("You can try again now.")
        );
        m.action(Action::Ok);
        m.typed('z');
        assert!(matches!(m.done()[..], [Effect::Login { .. }]));
    }

    /// Typing up to the longest password (in the widest characters) never moves the field to
    /// a new buffer, and neither does a character past the limit.
    #[test]
    fn password_fields_never_reallocate_while_typing() {
        let fields = |m: &Model| {
            [&m.form.password, &m.form.confirmation].map(|f| (f.as_ptr(), f.capacity()))
        };
        let mut m = Model::new(SessionRules::default());
        for c in "alice".chars() {
            m.typed(c);
        }
        m.done();
        let before = fields(&m);
        assert!(before[0].1 >= MAX_PASSWORD * 4);
        for _ in 0..=MAX_PASSWORD {
            m.typed('\u{1F4FA}'); // a television, 4 bytes in UTF-8
            assert_eq!(fields(&m), before, "login password moved");
        }
        assert_eq!(m.form.password.chars().count(), MAX_PASSWORD);
        // After the login the field is a fresh reserved buffer again.
        m.done();
        m.login_done(Err(LoginError::WrongCredentials));
        m.action(Action::Ok);
        let after_login = fields(&m);
        assert!(after_login[0].1 >= MAX_PASSWORD * 4);
        m.typed('x');
        assert_eq!(fields(&m), after_login);

        // The wizard's password and its confirmation.
        let mut m = Model::new(SessionRules::default());
        m.action(Action::Menu);
        for _ in 0..12 {
            m.action(Action::Digit(0));
        }
        m.done();
        for c in "bob".chars() {
            m.typed(c);
        }
        m.done();
        let before = fields(&m);
        for _ in 0..=MAX_PASSWORD {
            m.typed('\u{1F4FA}');
        }
        m.action(Action::Delete);
        m.typed('!');
        assert_eq!(fields(&m)[0], before[0], "new password moved");
        m.form.password.clear();
        for c in "Sofa-Remote#2026!".chars() {
            m.typed(c);
        }
        m.done();
        assert_eq!(m.screen(), Screen::Register(Step::Confirm));
        let confirm = fields(&m)[1];
        assert!(confirm.1 >= MAX_PASSWORD * 4);
        for _ in 0..=MAX_PASSWORD {
            m.typed('\u{1F4FA}');
        }
        assert_eq!(fields(&m)[1], confirm, "confirmation moved");
    }

    #[test]
    fn wizard_checks_each_step_before_the_next() {
        let mut m = Model::new(SessionRules::default());
        m.action(Action::Menu);
        assert_eq!(m.screen(), Screen::Register(Step::Code));
        for d in [1, 2, 3] {
            m.action(Action::Digit(d));
        }
        m.done();
        assert_eq!(
            m.form().map(|f| f.message),
            Some("An enrollment code has 12 digits".into())
        );
        for _ in 0..3 {
            m.action(Action::Back);
        }
        for _ in 0..12 {
            m.action(Action::Digit(0));
        }
        m.done();
        assert_eq!(m.screen(), Screen::Register(Step::Identifier));
        m.done();
        assert_eq!(
            m.screen(),
            Screen::Register(Step::Identifier),
            "empty identifier"
        );
        for c in "bob".chars() {
            m.typed(c);
        }
        m.done();
        for c in "bob-bob-bob!!".chars() {
            m.typed(c);
        }
        m.done();
        assert_eq!(m.screen(), Screen::Register(Step::Password));
        assert!(m.form().is_some_and(|f| f.message.contains("identifier")));
        for _ in 0.."bob-bob-bob!!".len() {
            m.action(Action::Delete);
        }
        for c in "Sofa-Remote#2026!".chars() {
            m.typed(c);
        }
        assert!(m.form().is_some_and(|f| f.strength >= Some(3)));
        m.done();
        for c in "Sofa-Remote#2026!".chars() {
            m.typed(c);
        }
        let fx = m.done();
        match &fx[..] {
            [
                Effect::Register {
                    code, identifier, ..
                },
            ] => {
                assert_eq!(code, "000000000000");
                assert_eq!(identifier, "bob");
            }
            other => panic!("expected a registration, got {other:?}"),
        }
        m.register_done(Err(RegisterError::EnrollmentRefused(
            "this enrollment code was already used".into(),
        )));
        assert_eq!(
            m.alert().map(|a| a.detail.as_str()),
            Some("This enrollment code was already used")
        );
        assert_eq!(m.screen(), Screen::Register(Step::Code));
        assert!(m.form.password.is_empty() && m.form.confirmation.is_empty());
    }
}
