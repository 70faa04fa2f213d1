//! Who is logged in, as the UI knows it (the server decides on every request).

use leptos::prelude::*;

use crate::model::UserView;

#[derive(Clone, Copy)]
pub struct AuthState {
    user: RwSignal<Option<UserView>>,
}

impl AuthState {
    pub fn new(user: Option<UserView>) -> Self {
        Self {
            user: RwSignal::new(user),
        }
    }

    pub fn user(&self) -> Option<UserView> {
        self.user.get()
    }

    pub fn is_logged_in(&self) -> bool {
        self.user.with(Option::is_some)
    }

    pub fn is_admin(&self) -> bool {
        self.user
            .with(|user| user.as_ref().is_some_and(|u| u.is_admin))
    }

    pub fn set(&self, user: Option<UserView>) {
        self.user.set(user);
    }
}

pub fn use_auth() -> AuthState {
    expect_context::<AuthState>()
}
