//! The control socket (design §2.1): attach, admin commands, app death.
