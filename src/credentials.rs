//! Who logs in to a cloud, and with what: users, projects and domains by
//! id or by name, the credential kinds, and the identity API version. The
//! vocabulary of the config and of `keystone`; it uses nothing of the crate.

use secrecy::SecretString;

/// A domain named by id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainRef {
    Id(String),
    Name(String),
}

/// A user named by id, or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

/// A project named by id, or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProjectRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

impl ProjectRef {
    /// The id or the name: how the project is written in an allow-list,
    /// a URL and a log line.
    pub fn label(&self) -> &str {
        match self {
            ProjectRef::Id(id) => id,
            ProjectRef::Name { name, .. } => name,
        }
    }

    /// Whether `selector` is written as a Keystone id (32 hex digits).
    pub fn is_id(selector: &str) -> bool {
        selector.len() == 32 && selector.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// How a client names a project in a URL or header: 32 hex digits are an
    /// id (Keystone's format), anything else is a name in `domain`.
    pub fn from_selector(selector: &str, domain: &DomainRef) -> ProjectRef {
        if ProjectRef::is_id(selector) {
            ProjectRef::Id(selector.to_string())
        } else {
            ProjectRef::Name {
                name: selector.to_string(),
                domain: domain.clone(),
            }
        }
    }
}

/// The secret a cloud logs in with.
#[derive(Debug, Clone)]
pub enum Credential {
    Password {
        user: UserRef,
        password: SecretString,
    },
    ApplicationCredential {
        id: AppCredRef,
        secret: SecretString,
    },
    /// A token given in the config (`auth_type: token`): used to get
    /// project tokens until it expires; it cannot be renewed.
    Token(SecretString),
}

/// Which kind of credential an `auth` table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    Password,
    ApplicationCredential,
    Token,
}

/// An identity API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V2,
    V3,
}

impl std::fmt::Display for DomainRef {
    /// `name` or `id=ID`, as a log line shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DomainRef::Id(id) => write!(f, "id={id}"),
            DomainRef::Name(name) => f.write_str(name),
        }
    }
}

impl std::fmt::Display for UserRef {
    /// `name@domain` or `id=ID`: who logs in, never how.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserRef::Id(id) => write!(f, "id={id}"),
            UserRef::Name { name, domain } => write!(f, "{name}@{domain}"),
        }
    }
}

impl std::fmt::Display for Credential {
    /// The kind of credential and whose it is; the secret never.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Password { user, .. } => write!(f, "password of user {user}"),
            Credential::ApplicationCredential {
                id: AppCredRef::Id(id),
                ..
            } => {
                write!(f, "application credential id={id}")
            }
            Credential::ApplicationCredential {
                id: AppCredRef::Name { name, user },
                ..
            } => {
                write!(f, "application credential {name} of user {user}")
            }
            Credential::Token(_) => f.write_str("a token from the configuration"),
        }
    }
}

impl ApiVersion {
    /// The URL path segment of this version.
    pub fn path(self) -> &'static str {
        match self {
            ApiVersion::V2 => "v2.0",
            ApiVersion::V3 => "v3",
        }
    }
}

/// An application credential named by id, or by name and its user.
#[derive(Debug, Clone)]
pub enum AppCredRef {
    Id(String),
    Name { name: String, user: UserRef },
}
