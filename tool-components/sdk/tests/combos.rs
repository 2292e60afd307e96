//! Resolving a combo against `GET /api/combos`.

use omniroute_tool_sdk::combos::{COMBOS, combo_not_found, resolve_combo};
use omniroute_tool_testing::{FakeGateway, Reply, fixtures};

#[test]
fn resolve_reads_the_combo_list() {
    let gw = FakeGateway::new().on_get(COMBOS, Reply::json(200, fixtures::COMBOS_POPULATED));
    assert_eq!(resolve_combo(&gw, "free-tier").unwrap()["sortOrder"], 2);
    assert_eq!(
        resolve_combo(&gw, "zzz").unwrap_err().message(),
        "Combo not found: \"zzz\""
    );
    let down = FakeGateway::new().on_get(COMBOS, Reply::unreachable("refused"));
    assert_eq!(
        resolve_combo(&down, "x").unwrap_err().message(),
        "OmniRoute API unreachable: GET /api/combos: refused"
    );
    assert_eq!(
        combo_not_found("nope").message(),
        "Combo not found: \"nope\""
    );
}
