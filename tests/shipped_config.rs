//! The shipped example configuration (deploy/rootwarden.toml) is valid and names every key the
//! daemon has, so operators never miss a setting and the file never drifts from the code.

use std::collections::BTreeSet;

use rootwarden::Config;

fn keys(table: &toml::Table) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (section, table) in table {
        for key in table.as_table().unwrap().keys() {
            keys.insert(format!("{section}.{key}"));
        }
    }
    keys
}

#[test]
fn the_shipped_configuration_is_valid_and_complete() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rootwarden.toml")).unwrap();
    let config = Config::from_toml(&text).unwrap();
    let in_file = keys(&toml::from_str::<toml::Table>(&text).unwrap());
    let mut in_code = keys(&toml::Table::try_from(&config).unwrap());
    // Only for the local AWS environment; documented, commented out.
    assert!(text.contains("# endpoint_url = "));
    in_code.remove("aws.endpoint_url");
    assert_eq!(in_file, in_code, "deploy/rootwarden.toml and the Config type disagree");
}
