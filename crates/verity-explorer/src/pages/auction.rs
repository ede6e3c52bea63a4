//! The reverse Dutch auction drawn as the price a lock pays at each height after submission,
//! with the point where the job was locked.

use maud::{Markup, html};
use verity_types::Offer;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
const PAD: f64 = 28.0;
/// Room left of the price axis for its labels.
const LEFT: f64 = 80.0;

/// `lock`: blocks after submission and price paid, if the job was locked.
pub fn curve(offer: &Offer, lock: Option<(u64, u64)>) -> Markup {
    // The price is flat after the ramp and a lock can only come before the lock timeout.
    let end = offer
        .lock_timeout
        .max(offer.ramp_start + offer.ramp_period)
        .max(1);
    let span = (offer.max_price - offer.min_price.min(offer.max_price)).max(1) as f64;
    let x = |blocks: u64| LEFT + (WIDTH - LEFT - PAD) * blocks.min(end) as f64 / end as f64;
    let y = |price: u64| {
        let above_min = price.saturating_sub(offer.min_price) as f64;
        HEIGHT - PAD - (HEIGHT - 2.0 * PAD) * (above_min / span).min(1.0)
    };
    // The curve is piecewise linear: flat, ramp, flat.
    let ramp_end = (offer.ramp_start + offer.ramp_period).min(end);
    let corners = [
        (0, offer.min_price),
        (offer.ramp_start.min(end), offer.min_price),
        (ramp_end, offer.price_at(ramp_end)),
        (end, offer.price_at(end)),
    ];
    let points: Vec<String> = corners
        .iter()
        .map(|(b, p)| format!("{:.1},{:.1}", x(*b), y(*p)))
        .collect();
    html! {
        figure.auction {
            svg viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img"
                aria-label={"Price rises from " (offer.min_price) " to " (offer.max_price) " over " (end) " blocks"} {
                line.axis x1=(LEFT) y1=(HEIGHT - PAD) x2=(WIDTH - PAD) y2=(HEIGHT - PAD) {}
                line.axis x1=(LEFT) y1=(PAD) x2=(LEFT) y2=(HEIGHT - PAD) {}
                polyline.price points=(points.join(" ")) {}
                text x=(LEFT - 6.0) y=(PAD + 4.0) text-anchor="end" { (offer.max_price) " max" }
                text x=(LEFT - 6.0) y=(HEIGHT - PAD + 4.0) text-anchor="end" { (offer.min_price) " min" }
                text x=(WIDTH - PAD) y=(HEIGHT - 8.0) text-anchor="end" { (end) " blocks (lock timeout)" }
                @if let Some((at, price)) = lock {
                    circle.lock cx=(format!("{:.1}", x(at))) cy=(format!("{:.1}", y(price))) r="6" {}
                    text.lock x=(format!("{:.1}", x(at))) y=(format!("{:.1}", (y(price) - 12.0).max(12.0))) text-anchor="middle" {
                        "locked at +" (at) " for " (price)
                    }
                }
            }
            figcaption {
                "Auction: the price a provider is paid rises from " (offer.min_price) " to " (offer.max_price)
                " between blocks +" (offer.ramp_start) " and +" (offer.ramp_start + offer.ramp_period)
                " after submission; the first lock takes it."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Offer {
        Offer {
            min_price: 100,
            max_price: 200,
            ramp_start: 2,
            ramp_period: 10,
            lock_timeout: 20,
            timeout: 40,
            collateral: 50,
        }
    }

    #[test]
    fn the_lock_point_is_marked_where_it_happened() {
        let svg = curve(&offer(), Some((7, 150))).into_string();
        assert!(svg.contains("locked at +7 for 150"), "{svg}");
        // +7 of 20 blocks across 492 px from x = 80; 150 is halfway up 104 px from y = 132.
        assert!(svg.contains(r#"cx="252.2" cy="80.0""#), "{svg}");
        assert!(!curve(&offer(), None).into_string().contains("locked at"));
    }

    #[test]
    fn a_degenerate_offer_draws_without_dividing_by_zero() {
        let flat = Offer {
            min_price: 5,
            max_price: 5,
            ramp_start: 0,
            ramp_period: 0,
            lock_timeout: 0,
            ..offer()
        };
        let svg = curve(&flat, Some((0, 5))).into_string();
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}
