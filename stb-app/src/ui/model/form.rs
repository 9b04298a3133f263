//! The form screens: login (identifier, then password) and the registration wizard (code,
//! identifier, password, confirmation), typed on the on-screen keyboard or a real one.

use super::overlays::{Alert, AlertAction, retry_alert};
use super::{Effect, Model, Screen, Step, capitalise};
use crate::register::RegisterError;
use crate::remote::Action;
use crate::ui::keyboard::{Keyboard, Layout, Press, Special};
use stb_protocol::password::{PolicyViolation, check_policy, strength};
use stb_protocol::{Identifier, Password};
use zeroize::Zeroizing;

const MAX_IDENTIFIER: usize = 64;
const MAX_PASSWORD: usize = 128;
/// The enrollment code's digits (shown in groups of four).
const MAX_CODE: usize = 12;

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
    /// The remote's keys for this form: key, then what it does.
    pub hint: Vec<(String, String)>,
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

/// A copy of a password field for the work that uses it (`Password` wipes it when dropped).
fn password_of(field: &Zeroizing<String>) -> Password {
    Password::new(field.as_str().to_owned())
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
        let shown = self.show_password;
        let mask = |s: &str| {
            if shown {
                s.to_owned()
            } else {
                "\u{2022}".repeat(s.chars().count())
            }
        };
        let field = |label: &str, text: String, active: bool| FieldView {
            label: label.to_owned(),
            text,
            active,
        };
        // The remote's keys for the form, as key caps at its foot: key, then what it does.
        let hints = |first: &[(&str, &str)], last: &[(&str, &str)]| -> Vec<(String, String)> {
            let nav = [("arrows", "move"), ("OK", "type"), ("DEL", "erase")];
            first
                .iter()
                .chain(&nav)
                .chain(last)
                .map(|(k, a)| ((*k).to_owned(), (*a).to_owned()))
                .collect()
        };
        let reveal = (
            "INFO",
            if shown {
                "hide password"
            } else {
                "show password"
            },
        );
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
                hint: if self.on_password {
                    hints(&[], &[("BACK", "identifier"), reveal])
                } else {
                    hints(&[], &[("MENU", "register this box")])
                },
            },
            Screen::Register(step) => {
                let (subtitle, fields, done) = match step {
                    Step::Code => (
                        "Step 1 of 4: the 12-digit code from your operator",
                        vec![field(
                            "Enrollment code",
                            stb_protocol::enrollment_code::display(&f.code),
                            true,
                        )],
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
                    hint: match step {
                        Step::Password | Step::Confirm => {
                            hints(&[], &[("BACK", "step before"), reveal])
                        }
                        Step::Code => hints(&[("0-9", "the code")], &[("BACK", "log in")]),
                        Step::Identifier => hints(&[], &[("BACK", "step before")]),
                    },
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
        let password = password_of(&self.form.password);
        strength(&password, self.identifier().as_ref())
    }

    /// The first policy rule the new password breaks, checked against itself (not yet the
    /// confirmation).
    fn policy_advice(&self) -> Option<String> {
        let id = self.identifier()?;
        // The confirmation is checked on its own step; here only the password itself.
        let password = password_of(&self.form.password);
        check_policy(&password, &password, &id)
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
        if self.screen == Screen::Register(Step::Code) && !c.is_ascii_digit() {
            // Spaces and dashes are how codes are printed: they are not typed.
            if !matches!(c, ' ' | '-') {
                self.form.message = "The code has digits only".into();
            }
            return;
        }
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
            // DELETE erases, BACK goes to the field or step before (what was typed stays).
            Action::Back => self.form_back(),
            Action::Info if self.shows_password_field() => {
                self.show_password = !self.show_password;
            }
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
                self.clear_form();
                self.enter(Screen::Register(Step::Code));
            }
            _ => {}
        }
    }

    pub(super) fn enter(&mut self, screen: Screen) {
        self.screen = screen;
        self.keyboard = Keyboard::with_layout(if screen == Screen::Register(Step::Code) {
            Layout::Digits
        } else {
            Layout::Text
        });
        self.refresh_advice();
    }

    /// Whether a password field is on screen (INFO shows or hides it).
    fn shows_password_field(&self) -> bool {
        matches!(
            self.screen,
            Screen::Login | Screen::Register(Step::Password | Step::Confirm)
        )
    }

    /// An empty form (what was typed wiped), password hidden, the login's first field.
    pub(super) fn clear_form(&mut self) {
        self.form = Form::default();
        (self.on_password, self.show_password) = (false, false);
    }

    /// What was typed as the password is of no further use (the account is locked, the box
    /// cannot log in): wiped rather than kept for a retry.
    pub(super) fn forget_password(&mut self) {
        self.form.password = secret_field();
    }

    /// BACK in a form: the previous field or step.
    pub(super) fn form_back(&mut self) {
        match self.screen {
            Screen::Login => self.on_password = false,
            Screen::Register(Step::Code) => {
                self.clear_form();
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
                    Ok(_) => self.enter(Screen::Register(Step::Identifier)),
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
                self.submit_registration(fx);
            }
            _ => {}
        }
    }

    /// Registers with what the wizard holds. The form keeps it (in memory only) until the
    /// login that follows succeeds, so a failure returns to the step at fault with the rest
    /// still typed, and a retry needs no typing.
    pub(super) fn submit_registration(&mut self, fx: &mut Vec<Effect>) {
        let f = &self.form;
        self.busy = Some("Registering this box\u{2026}".into());
        fx.push(Effect::Register {
            code: f.code.clone(),
            identifier: f.identifier.clone(),
            password: password_of(&f.password),
            confirmation: password_of(&f.confirmation),
        });
    }

    /// BACK while a login or registration runs: it is abandoned (the adapter drops its task
    /// and whatever it derived), the form shows what was typed.
    pub(super) fn cancel_work(&mut self, fx: &mut Vec<Effect>) {
        self.busy = None;
        fx.push(Effect::CancelWork);
        self.form.message = match self.screen {
            Screen::Login => "Login cancelled".into(),
            // The code may be spent already (see `code_spent`): the wizard says so if the
            // next attempt is refused.
            _ => "Registration cancelled".into(),
        };
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
        // The field keeps what was typed (in memory only) for a retry or a correction; the
        // login's copy is wiped when the login ends.
        let password = password_of(&self.form.password);
        self.form.message.clear();
        self.busy = Some("Checking your password\u{2026}".into());
        fx.push(Effect::Login {
            identifier: self.form.identifier.clone(),
            password,
        });
    }

    /// The registration finished: `Ok(account)` or the reason it failed.
    /// A result that comes after BACK cancelled the work is not shown.
    pub fn register_done(&mut self, result: Result<String, RegisterError>) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.busy.take().is_none() {
            return fx;
        }
        match result {
            Ok(_) => {
                // Registered: log in at once with what was just typed (the login screen is
                // what a failed login returns to).
                self.form.code.clear();
                self.form.confirmation = secret_field();
                self.on_password = true;
                self.enter(Screen::Login);
                self.submit_login(&mut fx);
                if self.busy.is_some() {
                    self.busy = Some("Box registered. Logging in\u{2026}".into());
                } else {
                    // A retry countdown of an earlier login runs: its alert shows first.
                    self.form.message = "Box registered. Log in when the countdown ends.".into();
                }
            }
            Err(e) => {
                if code_spent(&e) {
                    self.form.code.clear();
                }
                self.enter(Screen::Register(failing_step(&e)));
                self.alert = Some(registration_failed(&e));
            }
        }
        fx
    }
}

/// Whether the enrollment code may have been spent when `e` happened: the content server
/// takes the code when it signs the box's certificate, before the key server is asked, so a
/// later failure cannot be retried with the same code.
fn code_spent(e: &RegisterError) -> bool {
    matches!(
        e,
        RegisterError::EnrollmentAnswer(_)
            | RegisterError::Keys(_)
            | RegisterError::KeyServerUnreachable
            | RegisterError::KeyServerRefused { .. }
    )
}

/// The wizard step whose input the failure is about: the code when it was refused or may
/// be spent (a new one is needed), else the step that checks what was wrong.
fn failing_step(e: &RegisterError) -> Step {
    match e {
        _ if code_spent(e) => Step::Code,
        RegisterError::EnrollmentRefused(_) => Step::Code,
        RegisterError::Identifier(_) => Step::Identifier,
        RegisterError::Policy(PolicyViolation::Mismatch) => Step::Confirm,
        RegisterError::Policy(_) => Step::Password,
        _ => Step::Confirm,
    }
}

/// What the person on the sofa is told about a failed registration.
fn registration_failed(e: &RegisterError) -> Alert {
    let title = "Registration failed";
    let reason = capitalise(&e.to_string());
    match e {
        // Nothing reached the operator: the same code works again.
        RegisterError::EnrollmentUnreachable(_) => Alert::new(
            title,
            format!("{reason}. Check the network cable, then try again."),
        )
        .with(AlertAction::RetryRegistration),
        _ if code_spent(e) => Alert::new(
            title,
            format!(
                "{reason}. The enrollment code may be used up now: ask your operator for a \
                 new one (what else you typed is kept)."
            ),
        ),
        RegisterError::Configuration(_) => {
            Alert::new(title, format!("{reason}. Call your operator."))
        }
        // The operator's reasons, and the policy's, are already words for the person holding
        // the remote.
        _ => Alert::new(title, reason),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;
    use super::MAX_PASSWORD;
    use crate::keyserver_client::LoginError;
    use crate::register::RegisterError;
    use crate::ui::keyboard::{Keyboard, Press, Special};

    /// The fewest remote presses from `from` to a key whose OK gives `want`: arrows, and OK
    /// on Shift (breadth first over the keyboard's states, so Shift and wrapping count).
    fn route(from: Keyboard, want: Press) -> Vec<Action> {
        let mut seen = vec![from];
        let mut frontier = vec![(from, Vec::new())];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for (kb, path) in frontier {
                let mut pressed = kb;
                let got = pressed.press();
                if got == want {
                    let mut path: Vec<Action> = path;
                    path.push(Action::Ok);
                    return path;
                }
                let mut steps: Vec<(Action, Keyboard)> =
                    [Action::Up, Action::Down, Action::Left, Action::Right]
                        .into_iter()
                        .map(|a| {
                            let mut k = kb;
                            match a {
                                Action::Up => k.up(),
                                Action::Down => k.down(),
                                Action::Left => k.left(),
                                _ => k.right(),
                            }
                            (a, k)
                        })
                        .collect();
                if got == Press::Special(Special::Shift) {
                    steps.push((Action::Ok, pressed));
                }
                for (action, k) in steps {
                    if !seen.contains(&k) {
                        seen.push(k);
                        let mut p = path.clone();
                        p.push(action);
                        next.push((k, p));
                    }
                }
            }
            frontier = next;
        }
        panic!("no key types {want:?}");
    }

    /// Types `text` and Done as a viewer with the remote would: digits with the digit keys,
    /// the rest on the on-screen keyboard by the shortest route. Returns the presses.
    fn type_with_remote(m: &mut Model, text: &str) -> (usize, Vec<Effect>) {
        let mut presses = 0;
        let mut fx = Vec::new();
        let wanted = text
            .chars()
            .map(Press::Char)
            .chain([Press::Special(Special::Done)]);
        for want in wanted {
            let actions = match want {
                Press::Char(c) if c.is_ascii_digit() => vec![Action::Digit(c as u8 - b'0')],
                _ => route(*m.keyboard(), want),
            };
            presses += actions.len();
            for a in actions {
                fx = m.action(a);
            }
        }
        (presses, fx)
    }

    /// Issue 13's figure: presses to log in with the demo account on the remote.
    #[test]
    fn the_demo_login_on_the_remote_takes_these_presses() {
        let mut m = Model::new(SessionRules::default());
        let (identifier, password) = ("demo", "Sofa-Remote#2026!");
        let (first, _) = type_with_remote(&mut m, identifier);
        let (second, fx) = type_with_remote(&mut m, password);
        assert_eq!(login_of(&fx), (identifier, password));
        // BENCHMARKS.md reports this figure: a change of keyboard layout shows here.
        assert_eq!((first, second), (22, 69));
        println!(
            "demo login with the remote: {first} presses for {identifier:?} and Next, \
             {second} for the password and Log in, {} in all",
            first + second
        );
    }

    #[test]
    fn login_sends_the_password_and_the_form_keeps_it_until_success() {
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
        assert_eq!(login_of(&fx), ("alice", "Secret#1"));
        assert_eq!(m.form.password.as_str(), "Secret#1", "kept for a retry");
        assert!(m.busy().is_some());
        // Keys do nothing while busy, but BACK.
        assert!(m.action(Action::Ok).is_empty());
        m.login_done(Ok(LoggedIn {
            favourites: vec![],
            parental_age: None,
            parental_pin: false,
            account: "Alice".into(),
            package: "basic".into(),
            channels: vec![],
        }));
        assert!(m.form.password.is_empty() && m.form.identifier.is_empty());
    }

    #[test]
    fn back_cancels_a_login_and_its_late_result_is_not_shown() {
        let mut m = Model::new(SessionRules::default());
        submit(&mut m, "alice", "Secret#1");
        let fx = m.action(Action::Back);
        assert!(matches!(fx[..], [Effect::CancelWork]));
        assert!(m.busy().is_none() && m.screen() == Screen::Login);
        let form = m.form().expect("form");
        assert_eq!(form.message, "Login cancelled");
        assert_eq!(form.fields[0].text, "alice");
        assert_eq!(
            form.fields[1].text.chars().count(),
            8,
            "password still typed"
        );
        // The task was aborted, but a result that raced the abort changes nothing.
        assert!(
            m.login_done(Ok(LoggedIn {
                favourites: vec![],
                parental_age: None,
                parental_pin: false,
                account: "Alice".into(),
                package: "basic".into(),
                channels: channels(),
            }))
            .is_empty()
        );
        assert!(m.account().is_none() && m.alert().is_none());
        // OK logs in again without typing.
        assert!(matches!(m.done()[..], [Effect::Login { .. }]));
    }

    #[test]
    fn an_unreachable_service_offers_a_retry_with_what_was_typed() {
        let mut m = Model::new(SessionRules::default());
        submit(&mut m, "alice", "Secret#1");
        m.login_done(Err(LoginError::Unreachable("the key server".into())));
        let alert = m.alert().expect("alert").clone();
        assert_eq!(alert.on_ok, Some(AlertAction::RetryLogin));
        assert_eq!(alert.buttons(), ("OK  Try again", "Change"));
        let fx = m.action(Action::Ok);
        assert_eq!(login_of(&fx), ("alice", "Secret#1"));
        // BACK instead: the form, as typed, to change it.
        m.login_done(Err(LoginError::Unreachable("the key server".into())));
        assert!(m.action(Action::Back).is_empty());
        assert!(m.alert().is_none() && m.form().is_some_and(|f| f.fields[1].active));
        // A wrong password is not retried as it is: OK closes the alert.
        m.done();
        m.login_done(Err(LoginError::WrongCredentials));
        assert!(m.action(Action::Ok).is_empty() && m.alert().is_none());
    }

    #[test]
    fn delete_erases_back_steps_back_and_info_shows_the_password() {
        let mut m = Model::new(SessionRules::default());
        for c in "alice".chars() {
            m.typed(c);
        }
        m.done();
        for c in "Sofa".chars() {
            m.typed(c);
        }
        assert_eq!(m.form().expect("form").fields[1].text, "\u{2022}".repeat(4));
        m.action(Action::Info);
        assert_eq!(m.form().expect("form").fields[1].text, "Sofa");
        m.action(Action::Delete);
        assert_eq!(m.form().expect("form").fields[1].text, "Sof");
        m.action(Action::Info);
        assert_eq!(m.form().expect("form").fields[1].text, "\u{2022}".repeat(3));
        m.action(Action::Back);
        let form = m.form().expect("form");
        assert!(form.fields[0].active, "BACK went to the identifier");
        assert_eq!(
            (
                form.fields[0].text.as_str(),
                form.fields[1].text.chars().count()
            ),
            ("alice", 3)
        );
        // INFO works wherever the password shows; a new form starts hidden.
        m.action(Action::Info);
        assert_eq!(m.form().expect("form").fields[1].text, "Sof");
        m.action(Action::Menu);
        assert!(
            !m.show_password && m.form.password.is_empty(),
            "the wizard starts clean"
        );
    }

    #[test]
    fn the_code_is_digits_in_groups_of_four() {
        let mut m = Model::new(SessionRules::default());
        m.action(Action::Menu);
        for c in "1234 5678-9".chars() {
            m.typed(c);
        }
        assert_eq!(m.form().expect("form").fields[0].text, "1234-5678-9");
        m.typed('x');
        assert_eq!(
            m.form().map(|f| f.message),
            Some("The code has digits only".into())
        );
        for d in [0, 1, 2, 3] {
            m.action(Action::Digit(d));
        }
        assert_eq!(
            m.form().expect("form").fields[0].text,
            "1234-5678-9012",
            "12 at most"
        );
    }

    /// The wizard up to its last step, as typed on a keyboard: code 000000000000, bob.
    fn wizard_filled() -> (Model, Vec<Effect>) {
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
        let mut fx = Vec::new();
        for _ in 0..2 {
            for c in "Sofa-Remote#2026!".chars() {
                m.typed(c);
            }
            fx = m.done();
        }
        (m, fx)
    }

    #[test]
    fn a_failed_registration_returns_to_the_step_at_fault_with_the_rest_typed() {
        // A request that never left the box (an invalid URL fails in the builder).
        let unreachable = || {
            reqwest::Client::new()
                .get("not a url")
                .build()
                .expect_err("invalid URL")
        };
        let refused = |status| RegisterError::KeyServerRefused {
            status,
            reason: "no".into(),
        };
        // The error, the step shown, whether OK tries again, whether the code is kept (a
        // failure after the operator took the code needs a new one).
        for (error, step, retry, code_kept) in [
            (
                RegisterError::EnrollmentRefused("this enrollment code was already used".into()),
                Step::Code,
                false,
                true,
            ),
            (
                RegisterError::EnrollmentUnreachable(unreachable()),
                Step::Confirm,
                true,
                true,
            ),
            (
                RegisterError::Identifier(stb_protocol::Identifier::parse("").expect_err("empty")),
                Step::Identifier,
                false,
                true,
            ),
            (
                RegisterError::KeyServerUnreachable,
                Step::Code,
                false,
                false,
            ),
            (
                refused(reqwest::StatusCode::FORBIDDEN),
                Step::Code,
                false,
                false,
            ),
            (
                refused(reqwest::StatusCode::SERVICE_UNAVAILABLE),
                Step::Code,
                false,
                false,
            ),
        ] {
            let (mut m, fx) = wizard_filled();
            assert!(matches!(fx[..], [Effect::Register { .. }]));
            let spent = !code_kept;
            m.register_done(Err(error));
            assert_eq!(m.screen(), Screen::Register(step));
            let alert = m.alert().expect("alert").clone();
            assert_eq!(alert.on_ok == Some(AlertAction::RetryRegistration), retry);
            assert_eq!(alert.detail.contains("new one"), spent, "{}", alert.detail);
            let fx = m.action(Action::Ok);
            assert_eq!(matches!(fx[..], [Effect::Register { .. }]), retry);
            assert_eq!(m.form.code.is_empty(), spent);
            assert_eq!(m.form.identifier, "bob");
            assert_eq!(m.form.password.as_str(), "Sofa-Remote#2026!");
        }
    }

    #[test]
    fn a_registration_during_a_retry_countdown_says_so_and_waits() {
        // An earlier login's countdown still runs (5 s left).
        let (mut w, _) = wizard_filled();
        w.retry_until_countdown = 5;
        let fx = w.register_done(Ok("Bob".into()));
        assert!(!fx.iter().any(|e| matches!(e, Effect::Login { .. })));
        assert!(w.busy().is_none() && w.alert().is_some_and(|a| a.countdown == Some(5)));
        assert!(
            w.form()
                .is_some_and(|f| f.message.contains("Box registered"))
        );
    }

    #[test]
    fn a_registration_logs_in_at_once() {
        let (mut m, _) = wizard_filled();
        let fx = m.register_done(Ok("Bob".into()));
        assert_eq!(login_of(&fx), ("bob", "Sofa-Remote#2026!"));
        assert!(m.busy().is_some_and(|b| b.contains("registered")));
        assert!(m.form.code.is_empty() && m.form.confirmation.is_empty());
        // BACK on the way cancels the login only: the box stays registered.
        assert!(matches!(m.action(Action::Back)[..], [Effect::CancelWork]));
        assert_eq!(m.screen(), Screen::Login);
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
        // A failed login keeps the same buffer (what was typed stays for a correction), and
        // correcting it does not move it either; a locked account wipes it into a fresh one.
        m.done();
        m.login_done(Err(LoginError::WrongCredentials));
        m.action(Action::Ok);
        assert_eq!(fields(&m), before, "kept after a wrong password");
        m.action(Action::Delete);
        m.typed('x');
        assert_eq!(fields(&m), before, "corrected in place");
        m.done();
        m.login_done(Err(LoginError::Locked));
        assert!(m.form.password.is_empty() && m.form.password.capacity() >= MAX_PASSWORD * 4);

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
            m.action(Action::Delete);
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
    }
}
