//! Onboarding (SPEC section 8): the WhatsApp Business API application checklist, the
//! embedded sign-up as a state machine against Meta or the sandbox, the phone-number and
//! display-name rules, green tick eligibility and applications, leaving (downgrade, two-
//! step verification), and the website chat button.

pub mod chat_button;
pub mod checklist;
pub mod graphql;
pub mod green_tick;
pub mod leaving;
pub mod rules;
pub mod signup;
