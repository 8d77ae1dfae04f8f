//! The microservice deployment on loopback for a test: the four services on one PostgreSQL
//! database (a schema each) and a tansu broker, behind `msa gateway`, every one a real process on
//! its own port.

use super::{free_port, kafka_flags, spawn_serving, Server};

/// The password-hashing flags that keep sign-ups fast in tests.
pub const HASH_FLAGS: [&str; 6] = [
    "--password-hash-memory-kib",
    "64",
    "--password-hash-iterations",
    "1",
    // Tests sign many people up from one address.
    "--password-attempts-per-minute",
    "100000",
];

pub struct Microservices {
    /// The gateway's base URL (its process is the [`Server`] `start` returns beside).
    pub gateway: String,
    /// Each service's own base URL (behind the gateway's back, as a neighbour on the network).
    pub user: String,
    pub chat: String,
    pub payment: String,
    pub user_chat: String,
    /// Every chat instance's base URL (`chat` is the first; the gateway takes them in turn).
    pub chats: Vec<String>,
    /// The other chat instances' processes, by their place in `chats` less one.
    pub more_chats: Vec<Server>,
    /// The PostgreSQL database the services keep their schemas in.
    pub database: String,
    _services: Vec<Server>,
    _broker: msa_testkit::Broker,
}

impl Microservices {
    /// Starts the deployment; `None` (outside CI) when PostgreSQL or tansu is missing. `extra`
    /// flags go to the process they name (`("payment", ["--free-messages-per-day", "2"])`,
    /// `("gateway", …)`).
    pub async fn start(extra: &[(&str, &[&str])]) -> Option<(Microservices, Server)> {
        Self::start_scaled(extra, 1).await
    }

    /// As [`Microservices::start`], with `chats` instances of chat on the one database (user-chat
    /// posts to the first; the gateway balances across all).
    pub async fn start_scaled(
        extra: &[(&str, &[&str])],
        chats: usize,
    ) -> Option<(Microservices, Server)> {
        let database = msa_testkit::postgres_database().await?;
        let broker = msa_testkit::Broker::start().await?;
        let kafka = kafka_flags(&broker);
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let (user, chat, payment, user_chat) =
            (url(ports[0]), url(ports[1]), url(ports[2]), url(ports[3]));
        let service = |name: &str, port: u16, flags: &[&str]| {
            let listen = format!("127.0.0.1:{port}");
            let mut args = vec![
                "serve",
                name,
                "--listen",
                &listen,
                "--database-url",
                &database,
            ];
            args.extend(kafka.iter().map(String::as_str));
            args.extend(flags);
            for (service, more) in extra {
                if *service == name {
                    args.extend(more.iter());
                }
            }
            spawn_serving(&args)
        };
        let services = vec![
            service("user", ports[0], &HASH_FLAGS),
            service(
                "chat",
                ports[1],
                &["--user", &user, "--user-chat", &user_chat],
            ),
            service(
                "payment",
                ports[2],
                &["--user", &user, "--user-chat", &user_chat],
            ),
            service(
                "user-chat",
                ports[3],
                &["--user", &user, "--chat", &chat, "--payment", &payment],
            ),
        ];
        let more_chats: Vec<Server> = (1..chats)
            .map(|_| {
                service(
                    "chat",
                    free_port(),
                    &["--user", &user, "--user-chat", &user_chat],
                )
            })
            .collect();
        let mut chat_bases = vec![chat.clone()];
        chat_bases.extend(more_chats.iter().map(|server| server.base.clone()));
        let chat_list = chat_bases.join(",");
        let mut gateway_args = vec![
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--user",
            &user,
            "--chat",
            &chat_list,
            "--payment",
            &payment,
            "--user-chat",
            &user_chat,
        ];
        for (service, more) in extra {
            if *service == "gateway" {
                gateway_args.extend(more.iter());
            }
        }
        let gateway = spawn_serving(&gateway_args);
        Some((
            Microservices {
                gateway: gateway.base.clone(),
                user,
                chat,
                payment,
                user_chat,
                chats: chat_bases,
                more_chats,
                database,
                _services: services,
                _broker: broker,
            },
            gateway,
        ))
    }
}
