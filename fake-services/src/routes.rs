//! The route table: the HTTP method and path of every operation of every
//! service, as the book server lays them out. The fake services' router
//! serves these routes and the lab's clients call them, so a path is written
//! once.

use axum::http::Method;

use crate::service::{Operation, Service};

/// Where one operation of one service is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    /// From the server's root, starting with `/` (`/payments/charge`).
    pub path: &'static str,
}

impl Route {
    /// The route of `operation` on `service`: the effect at its own path,
    /// searches (`GET`) and clears (`DELETE`) at the collection's.
    pub fn of(service: Service, operation: Operation) -> Route {
        let (effect_method, effect, collection, status) = match service {
            Service::Payments => (
                Method::POST,
                "/payments/charge",
                "/payments/charges",
                "/payments/status",
            ),
            Service::Email => (
                Method::POST,
                "/email/send",
                "/email/emails",
                "/email/status",
            ),
            Service::Fulfillment => (
                Method::PUT,
                "/fulfillment/request",
                "/fulfillment/requests",
                "/fulfillment/status",
            ),
            Service::ErrorCatcher => (
                Method::PUT,
                "/error-catcher/notification",
                "/error-catcher/notifications",
                "/error-catcher/status",
            ),
        };
        let (method, path) = match operation {
            Operation::Status => (Method::GET, status),
            Operation::Effect => (effect_method, effect),
            Operation::Search => (Method::GET, collection),
            Operation::Clear => (Method::DELETE, collection),
        };
        Route { method, path }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_servers_layout() {
        let route = |s, o| {
            let Route { method, path } = Route::of(s, o);
            (method, path)
        };
        use Operation::*;
        use Service::*;
        assert_eq!(route(Payments, Effect), (Method::POST, "/payments/charge"));
        assert_eq!(route(Payments, Search), (Method::GET, "/payments/charges"));
        assert_eq!(route(Email, Effect), (Method::POST, "/email/send"));
        assert_eq!(route(Email, Clear), (Method::DELETE, "/email/emails"));
        assert_eq!(
            route(Fulfillment, Effect),
            (Method::PUT, "/fulfillment/request")
        );
        assert_eq!(
            route(ErrorCatcher, Search),
            (Method::GET, "/error-catcher/notifications")
        );
    }

    #[test]
    fn every_path_sits_under_the_service_name() {
        for service in Service::ALL {
            assert_eq!(
                Route::of(service, Operation::Status).path,
                format!("/{}/status", service.name())
            );
            for operation in Operation::ALL {
                let path = Route::of(service, operation).path;
                assert!(path.starts_with(&format!("/{}/", service.name())), "{path}");
            }
        }
    }
}
