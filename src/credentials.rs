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

    /// How a client names a project in a URL or header: 32 hex digits are an
    /// id (Keystone's format), anything else is a name in `domain`.
    pub fn from_selector(selector: &str, domain: &DomainRef) -> ProjectRef {
        if selector.len() == 32 && selector.bytes().all(|b| b.is_ascii_hexdigit()) {
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
