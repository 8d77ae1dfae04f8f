//! Products: packs of message credits, priced in a currency's minor units.

use serde::{Deserialize, Serialize};

/// A pack of credits on sale, e.g. 100 credits for 1,000 KRW.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Product {
    pub id: String,
    pub credits: u64,
    /// The price in the currency's minor units (KRW has none: 1000 is 1,000 won).
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
}

/// The products on sale, from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    products: Vec<Product>,
}

/// The catalog a deployment gets when it configures none.
pub const DEFAULT_CATALOG: &str =
    "credits-100=100:1000:KRW,credits-550=550:5000:KRW,credits-1200=1200:10000:KRW";

impl Catalog {
    /// Parses `id=credits:amount:currency` entries separated by commas
    /// (`credits-100=100:1000:KRW`). Ids are unique; credits and amounts positive.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut products: Vec<Product> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || {
                format!("`{entry}` is not id=credits:amount:currency (credits-100=100:1000:KRW)")
            };
            let (id, terms) = entry.split_once('=').ok_or_else(bad)?;
            let mut terms = terms.split(':');
            let (Some(credits), Some(amount), Some(currency), None) =
                (terms.next(), terms.next(), terms.next(), terms.next())
            else {
                return Err(bad());
            };
            let id = id.trim();
            let valid_id = !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            let credits: u64 = credits.parse().map_err(|_| bad())?;
            let amount: i64 = amount.parse().map_err(|_| bad())?;
            let currency_ok =
                currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase());
            // Credits are stored and summed as signed 64-bit numbers in the read models.
            let credits_ok = credits > 0 && i64::try_from(credits).is_ok();
            if !valid_id || !credits_ok || amount <= 0 || !currency_ok {
                return Err(bad());
            }
            if products.iter().any(|p| p.id == id) {
                return Err(format!("product `{id}` is listed twice"));
            }
            products.push(Product {
                id: id.to_owned(),
                credits,
                amount,
                currency: currency.to_owned(),
            });
        }
        if products.is_empty() {
            return Err("no products: list at least one".into());
        }
        Ok(Self { products })
    }

    pub fn products(&self) -> &[Product] {
        &self.products
    }

    pub fn find(&self, id: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalog_parses() {
        let catalog = Catalog::parse(DEFAULT_CATALOG).unwrap();
        assert_eq!(catalog.find("credits-100").unwrap().amount, 1000);
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in [
            "x",
            "a=1:2",
            "a=0:100:KRW",
            "a=1:-5:KRW",
            "a=1:5:krw",
            "a=1:5:KRW,a=2:9:KRW",
            "a=9223372036854775808:5:KRW",
            "",
        ] {
            assert!(Catalog::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
