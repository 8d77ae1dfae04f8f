//! Which service owns a request: by path, and for the paths user-chat shares with chat, by
//! method. `/internal/…` belongs to no one here: it is the services' own network. Paths come
//! parsed ([`RoutedPath`]), so what is matched here is what the service is sent.

use axum::http::Method;

use crate::path::RoutedPath;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    User,
    Chat,
    Payment,
    UserChat,
}

impl Owner {
    pub const ALL: [Owner; 4] = [Owner::User, Owner::Chat, Owner::Payment, Owner::UserChat];

    pub fn name(self) -> &'static str {
        match self {
            Owner::User => "user",
            Owner::Chat => "chat",
            Owner::Payment => "payment",
            Owner::UserChat => "user-chat",
        }
    }
}

/// The service that answers `method path`, if any.
pub fn owner(method: &Method, path: &RoutedPath) -> Option<Owner> {
    let segments: Vec<&str> = path.segments().collect();
    match segments.as_slice() {
        [".well-known", "jwks.json" | "revocations.json"] => Some(Owner::User),
        // A person's export is composed by user-chat from every service's part.
        ["v1", "users", "me", "export"] => Some(Owner::UserChat),
        // So is an operator's trail, from every service's part.
        ["v1", "admin", "trail", _] => Some(Owner::UserChat),
        ["v1", "users" | "auth", ..] => Some(Owner::User),
        ["v1", "direct-chats" | "inbox"] => Some(Owner::UserChat),
        ["v1", "rooms"] if method == Method::POST => Some(Owner::UserChat),
        ["v1", "rooms", _, "invites"] => Some(Owner::UserChat),
        ["v1", "rooms", _, "messages"] if method == Method::POST => Some(Owner::UserChat),
        ["v1", "rooms", _, "members"] if method == Method::GET => Some(Owner::UserChat),
        ["v1", "rooms" | "search" | "invites", ..] | ["v1", "stream"] => Some(Owner::Chat),
        ["v1", "products" | "payments" | "wallet", ..] => Some(Owner::Payment),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_goes_to_its_owner_and_internal_ones_nowhere() {
        let cases = [
            (Method::POST, "/v1/users", Some(Owner::User)),
            (Method::GET, "/.well-known/jwks.json", Some(Owner::User)),
            (Method::POST, "/v1/auth/token", Some(Owner::User)),
            (Method::GET, "/v1/users/me", Some(Owner::User)),
            (Method::GET, "/v1/users/me/export", Some(Owner::UserChat)),
            (Method::GET, "/v1/admin/trail/t1", Some(Owner::UserChat)),
            (Method::GET, "/v1/admin/other/t1", None),
            (Method::POST, "/internal/v1/trail/events", None),
            (Method::POST, "/v1/rooms/r1/messages", Some(Owner::UserChat)),
            (Method::POST, "/v1/rooms", Some(Owner::UserChat)),
            (Method::GET, "/v1/rooms", Some(Owner::Chat)),
            (Method::POST, "/v1/rooms/r1/invites", Some(Owner::UserChat)),
            (Method::GET, "/v1/rooms/r1/messages", Some(Owner::Chat)),
            (Method::GET, "/v1/rooms/r1/members", Some(Owner::UserChat)),
            (Method::POST, "/v1/rooms/r1/members", Some(Owner::Chat)),
            (Method::GET, "/v1/stream", Some(Owner::Chat)),
            (Method::GET, "/v1/invites", Some(Owner::Chat)),
            (Method::DELETE, "/v1/invites/r1", Some(Owner::Chat)),
            (Method::GET, "/v1/inbox", Some(Owner::UserChat)),
            (
                Method::POST,
                "/v1/payments/p1/refunds",
                Some(Owner::Payment),
            ),
            (Method::GET, "/v1/wallet/ledger", Some(Owner::Payment)),
            (Method::POST, "/internal/v1/rooms/r1/messages", None),
            (Method::GET, "/v1/nothing", None),
        ];
        for (method, path, expected) in cases {
            let routed = RoutedPath::parse(path).unwrap();
            assert_eq!(owner(&method, &routed), expected, "{method} {path}");
        }
    }
}
