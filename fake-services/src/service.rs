//! The four services and the operations each one offers.
//!
//! Fault rules name operations (`"operations": ["charge"]`), the HTTP routes
//! map onto them, and the in-process API takes them directly, so this is the
//! one place where the names live.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the fake third-party services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Payments,
    Email,
    Fulfillment,
    ErrorCatcher,
}

impl Service {
    /// Every service, in the order the UI lists them.
    pub const ALL: [Service; 4] = [
        Service::Payments,
        Service::Email,
        Service::Fulfillment,
        Service::ErrorCatcher,
    ];

    /// The path prefix and the name used in fault rules and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Service::Payments => "payments",
            Service::Email => "email",
            Service::Fulfillment => "fulfillment",
            Service::ErrorCatcher => "error-catcher",
        }
    }

    /// What a person calls it.
    pub fn title(self) -> &'static str {
        match self {
            Service::Payments => "Payments",
            Service::Email => "Email",
            Service::Fulfillment => "Fulfillment",
            Service::ErrorCatcher => "Error Catcher",
        }
    }

    /// The name of the one operation that has a side effect.
    pub fn effect_name(self) -> &'static str {
        match self {
            Service::Payments => "charge",
            Service::Email => "send",
            Service::Fulfillment => "request",
            Service::ErrorCatcher => "notify",
        }
    }

    /// What one record of its ledger is called, for messages.
    pub fn record_name(self) -> &'static str {
        match self {
            Service::Payments => "charge",
            Service::Email => "email",
            Service::Fulfillment => "fulfillment request",
            Service::ErrorCatcher => "notification",
        }
    }

    /// The prefix of the ids of the records the effect creates.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Service::Payments => "ch_",
            Service::Email => "em_",
            Service::Fulfillment => "fr_",
            Service::ErrorCatcher => "err_",
        }
    }

    /// Operations that fault rules can be limited to.
    pub fn faultable_operations(self) -> [&'static str; 2] {
        [self.effect_name(), "search"]
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a service name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownService(pub String);

impl fmt::Display for UnknownService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown service `{}`; the services are payments, email, fulfillment and error-catcher",
            self.0
        )
    }
}

impl std::error::Error for UnknownService {}

impl FromStr for Service {
    type Err = UnknownService;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|service| service.name() == s)
            .ok_or_else(|| UnknownService(s.to_string()))
    }
}

/// What a call asks of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// The health check (`GET /payments/status`).
    Status,
    /// The side effect: charge, send, request or notify.
    Effect,
    /// Look records up, as a client deduplicating by search does.
    Search,
    /// Forget every record (`DELETE /payments/charges`).
    Clear,
}

impl Operation {
    /// Every operation, in the order the router serves them.
    pub const ALL: [Operation; 4] = [
        Operation::Status,
        Operation::Effect,
        Operation::Search,
        Operation::Clear,
    ];

    /// The name fault rules use for this operation on `service`.
    pub fn name(self, service: Service) -> &'static str {
        match self {
            Operation::Status => "status",
            Operation::Effect => service.effect_name(),
            Operation::Search => "search",
            Operation::Clear => "clear",
        }
    }

    /// Whether server-side fault rules apply. Health checks and clears are
    /// exempt so that a status poll never uses up a rule's `calls`.
    pub fn faultable(self) -> bool {
        matches!(self, Operation::Effect | Operation::Search)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for service in Service::ALL {
            assert_eq!(service.name().parse::<Service>(), Ok(service));
        }
        let err = "bank".parse::<Service>().unwrap_err();
        assert!(err.to_string().contains("unknown service `bank`"));
    }
}
