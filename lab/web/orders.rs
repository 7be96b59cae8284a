//! Orders: the form (`/orders/new`), placing one (`POST /orders`), the list
//! (`/orders`) and one order's page (`/orders/{id}`, drawn by `order_page.rs`).

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use fake_services::negotiation::{body_is_json, Accept};
use serde_json::{json, Value};

use super::layout::{escape, money, page, time};
use super::order_form::{self, sort_errors, OrderForm};
use super::order_page::{ms, order_html, order_view};
use super::pages::{self, html, internal, not_found, wants_json};
use super::{Web, WebState};
use crate::pipeline::{place_order, Enqueue, PlaceError};
use crate::store::{FieldError, Product, StoreError};

pub(super) async fn new_form(State(web): State<WebState>, headers: HeaderMap) -> Response {
    let products = match web.lab.shop.store.products().await {
        Ok(products) => products,
        Err(err) => return internal(&headers, "could not read the products", &err),
    };
    if wants_json(&headers) {
        return pages::json(
            StatusCode::OK,
            json!({
                "products": products,
                "fields": ["order[product_id]", "order[quantity]", "order[email]", "order[address]"],
            }),
        );
    }
    form_page(StatusCode::OK, &products, &OrderForm::default(), &[])
}

fn form_page(
    status: StatusCode,
    products: &[Product],
    form: &OrderForm,
    errors: &[FieldError],
) -> Response {
    let body = order_form::render(products, form, errors);
    html(status, page("New Order", &body, false))
}

pub(super) async fn create(
    State(web): State<WebState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_json = body_is_json(&headers);
    // A script that posts JSON gets JSON back unless it asks for a page.
    let accepts_html = Accept::of(&headers).wants_html();
    let headers = if wants_json(&headers) || (is_json && !accepts_html) {
        let mut json_headers = HeaderMap::new();
        json_headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        json_headers
    } else {
        headers
    };
    let form = if is_json {
        match OrderForm::from_json(&body) {
            Ok(form) => form,
            Err(message) => {
                return pages::error(
                    &headers,
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    &message,
                    Value::Null,
                    "",
                )
            }
        }
    } else {
        OrderForm::from_urlencoded(&body)
    };
    let store = &web.lab.shop.store;
    let new = match form.parse() {
        Ok(new) => new,
        Err(mut errors) => {
            if let Some(id) = form.product_id_number() {
                if let Ok(None) = store.product(id).await {
                    errors.push(FieldError::new("product_id", "must exist"));
                    sort_errors(&mut errors);
                }
            }
            return invalid(&web, &headers, &form, &errors).await;
        }
    };
    match place_order(&web.lab.shop, &web.lab.runner, &new).await {
        Ok(placed) => {
            let id = placed.order.id;
            if let Some(problem) = placed.problem {
                tracing::warn!(order_id = id, %problem, "order placed with a problem");
                web.remember_problem(id, problem);
            }
            let location = format!("/orders/{id}");
            if wants_json(&headers) {
                let view = order_view(&web, placed.order).await;
                let mut response = pages::json(StatusCode::CREATED, view.to_json());
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
                return response;
            }
            Redirect::to(&location).into_response()
        }
        Err(PlaceError::Store(StoreError::Invalid(errors))) => {
            invalid(&web, &headers, &form, &errors).await
        }
        Err(PlaceError::Store(err)) => internal(&headers, "the database failed", &err),
        Err(PlaceError::Died(err)) => {
            let what = match web.lab.shop.knobs.enqueue {
                Enqueue::Outbox => {
                    "The order and its outbox row were committed first, so the outbox relay will \
                     still enqueue its job."
                }
                Enqueue::AfterCommit => {
                    "The order was committed but its job was never enqueued: the order is lost \
                     (nothing will charge, email or fulfill it)."
                }
                Enqueue::InTransaction => {
                    "The transaction was rolled back, so there is no order, but its job was \
                     already on the queue: it will run for an order that does not exist."
                }
                Enqueue::Inline => "The order was committed; its job body never ran.",
            };
            pages::error(
                &headers,
                StatusCode::INTERNAL_SERVER_ERROR,
                "The Web Process Died",
                &format!("The web process died while placing the order ({err}). {what}"),
                json!({"enqueue": web.lab.shop.knobs.enqueue}),
                "<a href=\"/orders\">Orders</a> · <a href=\"/jobs\">Jobs</a> ·",
            )
        }
        Err(PlaceError::Enqueue { order_id, source }) => pages::error(
            &headers,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Order Saved, Job Not Enqueued",
            &format!(
                "Order {order_id} was saved but its job could not be enqueued ({source}): \
                 nothing will complete it."
            ),
            // `id`, as in the answer for a placed order: the order exists
            // (a client reading the id finds it either way).
            json!({"id": order_id, "order_id": order_id}),
            &format!("<a href=\"/orders/{order_id}\">Order {order_id}</a> ·"),
        ),
    }
}

/// 422: the form again with its errors and the values as typed.
async fn invalid(
    web: &Web,
    headers: &HeaderMap,
    form: &OrderForm,
    errors: &[FieldError],
) -> Response {
    if wants_json(headers) {
        let errors: Vec<Value> = errors
            .iter()
            .map(|e| json!({"field": e.field, "message": e.message, "full_message": e.full_message()}))
            .collect();
        return pages::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "the order is invalid", "errors": errors}),
        );
    }
    let products = web.lab.shop.store.products().await.unwrap_or_default();
    form_page(StatusCode::UNPROCESSABLE_ENTITY, &products, form, errors)
}

pub(super) async fn show(
    State(web): State<WebState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return not_found(&headers, &format!("order {id:?}"));
    };
    let order = match web.lab.shop.store.order(id).await {
        Ok(Some(order)) => order,
        Ok(None) => return not_found(&headers, &format!("order {id}")),
        Err(err) => return internal(&headers, "could not read the order", &err),
    };
    let view = order_view(&web, order).await;
    if wants_json(&headers) {
        return pages::json(StatusCode::OK, view.to_json());
    }
    html(
        StatusCode::OK,
        page(&format!("Order {id}"), &order_html(&view), view.in_progress),
    )
}

pub(super) async fn list(State(web): State<WebState>, headers: HeaderMap) -> Response {
    let store = &web.lab.shop.store;
    let orders = match store.orders().await {
        Ok(orders) => orders,
        Err(err) => return internal(&headers, "could not list the orders", &err),
    };
    if wants_json(&headers) {
        let orders: Vec<Value> = orders
            .iter()
            .map(|order| {
                let mut value = serde_json::to_value(order).unwrap_or(Value::Null);
                if let Some(map) = value.as_object_mut() {
                    map.insert("state".into(), json!(order.state()));
                }
                value
            })
            .collect();
        return pages::json(StatusCode::OK, json!({ "orders": orders }));
    }
    let names: HashMap<i64, String> = store
        .products()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let mut out = String::from("<p><a href=\"/orders/new\">Place an order</a></p>\n");
    if orders.is_empty() {
        out.push_str("<p>No orders yet.</p>\n");
    } else {
        out.push_str(
            "<table id=\"orders\"><tr><th>order</th><th>product</th><th>quantity</th><th>amount</th>\
             <th>email</th><th>placed</th><th>state</th><th>charge</th></tr>\n",
        );
        for order in &orders {
            let product = names
                .get(&order.product_id)
                .cloned()
                .unwrap_or_else(|| order.product_id.to_string());
            let _ = writeln!(
                out,
                "<tr><td><a href=\"/orders/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&product),
                order.quantity,
                money(order.amount_cents),
                escape(&order.email),
                escape(&time(ms(order.created_at_ms))),
                order.state(),
                escape(order.charge_id.as_deref().unwrap_or("—")),
                id = order.id,
            );
        }
        out.push_str("</table>\n");
    }
    html(StatusCode::OK, page("Orders", &out, false))
}
