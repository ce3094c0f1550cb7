"""The RegistryStore contract, on every backend factory (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shipyard.errors import (
    ConflictError,
    InvalidArgumentError,
    ModelNotFoundError,
    NotFoundError,
    PromotionRefusedError,
)
from shipyard.registry.store import RegistryStore
from shipyard.store.db import engine_for
from shipyard.store.workspaces import ensure_workspace

if TYPE_CHECKING:
    from tests.registry.conftest import RegistryEnv

MS = timedelta(milliseconds=1)


def _model_with_versions(store: RegistryStore, name: str = "churn", n: int = 3) -> None:
    store.create_registered_model(name)
    for i in range(n):
        store.create_model_version(name, f"runs:/run{i + 1}/model", run_id=f"run{i + 1}")


class TestRegisteredModels:
    def test_create_and_get_returns_the_model(self, registry_store: RegistryStore) -> None:
        created = registry_store.create_registered_model(
            "churn", description="predicts churn", tags={"team": "growth"}
        )
        got = registry_store.get_registered_model("churn")
        assert created == got
        assert got.name == "churn"
        assert got.workspace == registry_store.workspace
        assert got.description == "predicts churn"
        assert got.tags == {"team": "growth"}
        assert got.latest_version is None
        assert got.aliases == {} and got.gates == {}
        assert got.created_at.tzinfo is not None
        assert abs(got.created_at - datetime.now(UTC)) < timedelta(minutes=1)

    def test_creating_a_model_twice_is_a_conflict(self, registry_store: RegistryStore) -> None:
        registry_store.create_registered_model("churn")
        with pytest.raises(ConflictError, match="Model 'churn' already exists in workspace"):
            registry_store.create_registered_model("churn")

    @pytest.mark.parametrize(
        "name", ["", "a/b", "churn@champion", "bad\x00name", "tab\tname", "x" * 257]
    )
    def test_invalid_model_names_are_rejected(
        self, registry_store: RegistryStore, name: str
    ) -> None:
        with pytest.raises(
            InvalidArgumentError, match=r"Invalid model name[\s\S]*without '/', '@'"
        ):
            registry_store.create_registered_model(name)

    @pytest.mark.parametrize(
        "name", ["x" * 256, "Churn Model v2", "modèle-désabonnement", "a.b_c-d"]
    )
    def test_unusual_but_valid_names_work(self, registry_store: RegistryStore, name: str) -> None:
        registry_store.create_registered_model(name)
        assert registry_store.get_registered_model(name).name == name

    def test_unknown_model_suggests_a_close_name(self, registry_store: RegistryStore) -> None:
        registry_store.create_registered_model("churn")
        with pytest.raises(
            ModelNotFoundError, match=r"Model 'chrun' does not exist.*Did you mean 'churn'"
        ):
            registry_store.get_registered_model("chrun")

    def test_update_description_and_tags(self, registry_store: RegistryStore) -> None:
        registry_store.create_registered_model("churn", tags={"team": "growth"})
        updated = registry_store.update_registered_model("churn", description="v2 features")
        assert updated.description == "v2 features"
        registry_store.set_registered_model_tag("churn", "team", "retention")
        registry_store.set_registered_model_tag("churn", "owner", "ana")
        assert registry_store.get_registered_model("churn").tags == {
            "owner": "ana",
            "team": "retention",
        }
        with pytest.raises(ModelNotFoundError):
            registry_store.set_registered_model_tag("nope", "k", "v")

    def test_list_pages_through_models_by_name(self, registry_store: RegistryStore) -> None:
        for name in ["e", "b", "d", "a", "c"]:
            registry_store.create_registered_model(name)
        registry_store.create_model_version("c", "s3://c/1")
        seen = []
        token = None
        while True:
            page = registry_store.list_registered_models(max_results=2, page_token=token)
            seen.extend(page.items)
            token = page.next_page_token
            if token is None:
                break
        assert [m.name for m in seen] == ["a", "b", "c", "d", "e"]
        assert next(m for m in seen if m.name == "c").latest_version == 1

    def test_bad_page_token_is_rejected(self, registry_store: RegistryStore) -> None:
        with pytest.raises(InvalidArgumentError, match="Invalid page token"):
            registry_store.list_registered_models(page_token="garbage!")

    def test_delete_model_removes_versions_aliases_and_history(
        self, registry_store: RegistryStore
    ) -> None:
        _model_with_versions(registry_store, "churn", 2)
        registry_store.set_alias("churn", "champion", 2)
        registry_store.delete_registered_model("churn")
        with pytest.raises(ModelNotFoundError, match="Model 'churn' does not exist"):
            registry_store.get_registered_model("churn")
        with pytest.raises(ModelNotFoundError):
            registry_store.get_version_by_alias("churn", "champion")
        # A new model of the same name starts from scratch.
        registry_store.create_registered_model("churn")
        assert registry_store.create_model_version("churn", "s3://x").version == 1
        assert registry_store.alias_history("churn") == []

    def test_delete_unknown_model_raises(self, registry_store: RegistryStore) -> None:
        with pytest.raises(ModelNotFoundError, match="Model 'ghost' does not exist"):
            registry_store.delete_registered_model("ghost")


class TestModelVersions:
    def test_versions_are_numbered_from_one(self, registry_store: RegistryStore) -> None:
        registry_store.create_registered_model("churn")
        versions = [
            registry_store.create_model_version("churn", f"s3://b/churn/{i}") for i in range(3)
        ]
        assert [v.version for v in versions] == [1, 2, 3]
        registry_store.create_registered_model("other")
        assert registry_store.create_model_version("other", "s3://o").version == 1
        assert registry_store.get_registered_model("churn").latest_version == 3

    def test_version_fields_round_trip(self, registry_store: RegistryStore) -> None:
        registry_store.create_registered_model("churn")
        v = registry_store.create_model_version(
            "churn",
            "runs:/abc123/model",
            run_id="abc123",
            description="first",
            flavor="sklearn",
            manifest_sha256="ab" * 32,
            tags={"stage": "exp"},
        )
        got = registry_store.get_model_version("churn", 1)
        assert got == v
        assert (got.name, got.version, got.workspace) == ("churn", 1, registry_store.workspace)
        assert (got.source, got.run_id, got.status) == ("runs:/abc123/model", "abc123", "READY")
        assert (got.description, got.flavor, got.manifest_sha256) == ("first", "sklearn", "ab" * 32)
        assert got.tags == {"stage": "exp"} and got.aliases == []

    def test_list_versions_oldest_first(self, registry_store: RegistryStore) -> None:
        _model_with_versions(registry_store, "churn", 3)
        assert [v.version for v in registry_store.list_model_versions("churn")] == [1, 2, 3]

    def test_unknown_version_lists_the_known_ones(self, registry_store: RegistryStore) -> None:
        _model_with_versions(registry_store, "churn", 2)
        with pytest.raises(
            ModelNotFoundError, match=r"Model 'churn' has no version 9\. Versions: 1, 2\."
        ):
            registry_store.get_model_version("churn", 9)

    def test_version_of_unknown_model_raises(self, registry_store: RegistryStore) -> None:
        with pytest.raises(ModelNotFoundError, match="Model 'ghost' does not exist"):
            registry_store.create_model_version("ghost", "s3://x")
        with pytest.raises(ModelNotFoundError, match="Model 'ghost' does not exist"):
            registry_store.list_model_versions("ghost")

    @pytest.mark.parametrize("version", [0, -1])
    def test_invalid_version_numbers(self, registry_store: RegistryStore, version: int) -> None:
        _model_with_versions(registry_store, "churn", 1)
        with pytest.raises(InvalidArgumentError, match="Invalid model version"):
            registry_store.get_model_version("churn", version)

    def test_update_description_and_tags(self, registry_store: RegistryStore) -> None:
        _model_with_versions(registry_store, "churn", 1)
        assert registry_store.update_model_version("churn", 1, description="d").description == "d"
        registry_store.set_model_version_tag("churn", 1, "validated", "yes")
        registry_store.set_model_version_tag("churn", 1, "validated", "no")
        assert registry_store.get_model_version("churn", 1).tags == {"validated": "no"}
        with pytest.raises(ModelNotFoundError, match="has no version 2"):
            registry_store.set_model_version_tag("churn", 2, "k", "v")

    def test_deleted_version_is_gone_and_its_number_never_reused(
        self, registry_store: RegistryStore
    ) -> None:
        _model_with_versions(registry_store, "churn", 3)
        registry_store.delete_model_version("churn", 3)
        assert [v.version for v in registry_store.list_model_versions("churn")] == [1, 2]
        assert registry_store.get_registered_model("churn").latest_version == 2
        with pytest.raises(ModelNotFoundError, match=r"has no version 3\. Versions: 1, 2\."):
            registry_store.get_model_version("churn", 3)
        with pytest.raises(ModelNotFoundError, match="has no version 3"):
            registry_store.delete_model_version("churn", 3)
        assert registry_store.create_model_version("churn", "s3://new").version == 4

    def test_deleting_a_version_removes_its_aliases_with_history(
        self, registry_store: RegistryStore
    ) -> None:
        _model_with_versions(registry_store, "churn", 2)
        registry_store.set_alias("churn", "champion", 2, actor="ana")
        registry_store.set_alias("churn", "staging", 2)
        registry_store.set_alias("churn", "challenger", 1)
        registry_store.delete_model_version("churn", 2)
        assert registry_store.get_registered_model("churn").aliases == {"challenger": 1}
        with pytest.raises(
            ModelNotFoundError, match=r"has no alias 'champion'\. Aliases: challenger\."
        ):
            registry_store.get_version_by_alias("churn", "champion")
        removal = registry_store.alias_history("churn", "champion")[-1]
        assert (removal.from_version, removal.to_version) == (2, None)
        assert removal.reason == "version 2 deleted"


class TestAliases:
    def test_set_alias_and_resolve_it(self, registry_store: RegistryStore) -> None:
        _model_with_versions(registry_store, "churn", 2)
        change = registry_store.set_alias("churn", "champion", 1, actor="ana")
        assert (change.name, change.alias, change.from_version, change.to_version) == (
            "churn",
            "champion",
            None,
            1,
        )
        assert change.actor == "ana"
        assert registry_store.get_version_by_alias("churn", "champion").version == 1
        assert registry_store.get_model_version("churn", 1).aliases == ["champion"]
        assert registry_store.get_registered_model("churn").aliases == {"champion": 1}

    def test_moving_an_alias_reports_where_it_came_from(
        self, registry_store: RegistryStore
    ) -> None:
        _model_with_versions(registry_store, "churn", 2)
        registry_store.set_alias("churn", "champion", 1)
        change = registry_store.set_alias("churn", "champion", 2, actor="bo")
        assert (change.from_version, change.to_version) == (1, 2)
        assert registry_store.get_model_version("churn", 1).aliases == []
        assert registry_store.get_model_version("churn", 2).aliases == ["champion"]

    def test_setting_the_same_version_again_records_nothing(
        self, registry_store: RegistryStore
    ) -> None:
        _model_with_versions(registry_store, "churn", 1)
        registry_store.set_alias("churn", "champion", 1)
        change = registry_store.set_alias("churn", "champion", 1)
        assert (change.from_version, change.to_version) == (1, 1)
        assert len(registry_store.alias_history("churn", "champion")) == 1

    def test_latest_resolves_to_the_highest_live_version(
        self, registry_store: RegistryStore
    ) -> None:
        registry_store.create_registered_model("churn")
        with pytest.raises(ModelNotFoundError, match="Model 'churn' has no versions yet"):
            registry_store.get_version_by_alias("churn", "latest")
        _ = [registry_store.create_model_version("churn", f"s3://{i}") for i in range(3)]
        assert registry_store.get_version_by_alias("churn", "latest").version == 3
        registry_store.delete_model_version("churn", 3)
        assert registry_store.get_version_by_alias("churn", "latest").version == 2

    def test_latest_is_reserved(self, registry_store: RegistryStore) -> None:
        _model_with_versions(registry_store, "churn", 1)
        with pytest.raises(InvalidArgumentError, match="Alias 'latest' is reserved"):
            registry_store.set_alias("churn", "latest", 1)
        with pytest.raises(InvalidArgumentError, match="Alias 'latest' is reserved"):
            registry_store.delete_alias("churn", "latest")

    @pytest.mark.parametrize("alias", ["Champion", "1st", "", "blue green", "a@b", "x" * 129, "42"])
    def test_invalid_alias_names(self, registry_store: RegistryStore, alias: str) -> None:
        _model_with_versions(registry_store, "churn", 1)
        with pytest.raises(InvalidArgumentError, match=r"Invalid alias[\s\S]*lowercase letters"):
            registry_store.set_alias("churn", alias, 1)

    def test_unknown_alias_lists_the_existing_ones(self, registry_store: RegistryStore) -> None:
        _model_with_versions(registry_store, "churn", 1)
        with pytest.raises(
            ModelNotFoundError, match=r"Model 'churn' has no alias 'champion'\. Aliases: none\."
        ):
            registry_store.get_version_by_alias("churn", "champion")
        registry_store.set_alias("churn", "staging", 1)
        with pytest.raises(
            ModelNotFoundError, match=r"Model 'churn' has no alias 'champion'\. Aliases: staging\."
        ):
            registry_store.get_version_by_alias("churn", "champion")

    def test_alias_to_unknown_version_or_model_raises(self, registry_store: RegistryStore) -> None:
        _model_with_versions(registry_store, "churn", 1)
        with pytest.raises(ModelNotFoundError, match="Model 'churn' has no version 5"):
            registry_store.set_alias("churn", "champion", 5)
        with pytest.raises(ModelNotFoundError, match="Model 'ghost' does not exist"):
            registry_store.set_alias("ghost", "champion", 1)

    def test_delete_alias(self, registry_store: RegistryStore) -> None:
        _model_with_versions(registry_store, "churn", 1)
        registry_store.set_alias("churn", "champion", 1)
        registry_store.delete_alias("churn", "champion", actor="ana")
        assert registry_store.get_registered_model("churn").aliases == {}
        with pytest.raises(ModelNotFoundError, match="has no alias 'champion'"):
            registry_store.delete_alias("churn", "champion")


class TestGates:
    @pytest.fixture
    def churn(self, registry_store: RegistryStore, registry_env: RegistryEnv) -> RegistryStore:
        registry_env.run_metrics.update(
            good={"accuracy": 0.91, "latency_p99_ms": 12.0},
            weak={"accuracy": 0.81, "latency_p99_ms": 12.0},
            slow={"accuracy": 0.95},
        )
        registry_store.create_registered_model("churn")
        for run_id in ["good", "weak", "slow"]:
            registry_store.create_model_version("churn", f"runs:/{run_id}/model", run_id=run_id)
        registry_store.create_model_version("churn", "s3://no-run")  # version 4: no run
        registry_store.set_gate("churn", "champion", "accuracy >= 0.85 and latency_p99_ms < 20")
        return registry_store

    def test_bad_gate_is_rejected_when_set_with_its_position(
        self, registry_store: RegistryStore
    ) -> None:
        registry_store.create_registered_model("churn")
        with pytest.raises(
            InvalidArgumentError, match="Invalid gate expression at position 12: expected a number"
        ):
            registry_store.set_gate("churn", "champion", "accuracy >= high")
        with pytest.raises(InvalidArgumentError, match="Alias 'latest' is reserved"):
            registry_store.set_gate("churn", "latest", "accuracy > 0")
        with pytest.raises(ModelNotFoundError):
            registry_store.set_gate("ghost", "champion", "accuracy > 0")
        assert registry_store.get_registered_model("churn").gates == {}

    def test_gates_are_listed_on_the_model(self, churn: RegistryStore) -> None:
        assert churn.get_registered_model("churn").gates == {
            "champion": "accuracy >= 0.85 and latency_p99_ms < 20"
        }

    def test_passing_gate_moves_the_alias(self, churn: RegistryStore) -> None:
        change = churn.set_alias("churn", "champion", 1)
        assert change.to_version == 1
        assert change.reason == "gate passed: accuracy >= 0.85 and latency_p99_ms < 20"

    def test_failing_gate_refuses_and_names_the_terms(self, churn: RegistryStore) -> None:
        churn.set_alias("churn", "champion", 1)
        with pytest.raises(
            PromotionRefusedError,
            match=r"Version 2 of model 'churn' may not become @champion: "
            r"gate failed on accuracy >= 0\.85 \(was 0\.81\)\.",
        ) as info:
            churn.set_alias("churn", "champion", 2)
        assert info.value.failing == ["accuracy >= 0.85 (was 0.81)"]
        assert churn.get_version_by_alias("churn", "champion").version == 1
        assert len(churn.alias_history("churn", "champion")) == 1

    def test_missing_metric_fails_its_term(self, churn: RegistryStore) -> None:
        with pytest.raises(PromotionRefusedError, match=r"latency_p99_ms < 20 \(metric missing\)"):
            churn.set_alias("churn", "champion", 3)

    def test_version_without_run_has_no_metrics(self, churn: RegistryStore) -> None:
        with pytest.raises(PromotionRefusedError) as info:
            churn.set_alias("churn", "champion", 4)
        assert info.value.failing == [
            "accuracy >= 0.85 (metric missing)",
            "latency_p99_ms < 20 (metric missing)",
        ]

    def test_failing_or_reports_both_sides(self, churn: RegistryStore) -> None:
        churn.set_gate("churn", "staging", "accuracy > 0.9 or latency_p99_ms < 5")
        with pytest.raises(PromotionRefusedError) as info:
            churn.set_alias("churn", "staging", 2)
        assert info.value.failing == ["accuracy > 0.9 (was 0.81)", "latency_p99_ms < 5 (was 12)"]

    def test_force_moves_past_the_gate_and_says_so(self, churn: RegistryStore) -> None:
        change = churn.set_alias("churn", "champion", 2, actor="ana", force=True)
        assert change.to_version == 2
        assert change.reason == "forced past gate: accuracy >= 0.85 (was 0.81)"
        (recorded,) = churn.alias_history("churn", "champion")
        assert recorded.reason == change.reason and recorded.actor == "ana"

    def test_gates_apply_per_alias(self, churn: RegistryStore) -> None:
        assert churn.set_alias("churn", "challenger", 2).to_version == 2

    def test_replacing_and_deleting_a_gate(self, churn: RegistryStore) -> None:
        churn.set_gate("churn", "champion", "accuracy >= 0.8")
        assert churn.set_alias("churn", "champion", 2).to_version == 2
        churn.set_gate("churn", "champion", "accuracy >= 0.99")
        churn.delete_gate("churn", "champion")
        assert churn.set_alias("churn", "champion", 4).reason == ""
        with pytest.raises(
            ModelNotFoundError,
            match=r"Model 'churn' has no gate on alias 'champion'\. Gates: none\.",
        ):
            churn.delete_gate("churn", "champion")


class TestAliasHistory:
    def test_history_records_every_move(self, registry_store: RegistryStore) -> None:
        _model_with_versions(registry_store, "churn", 3)
        registry_store.set_alias("churn", "champion", 1, actor="ana")
        registry_store.set_alias("churn", "staging", 3, actor="ci")
        registry_store.set_alias("churn", "champion", 2, actor="bo")
        registry_store.delete_alias("churn", "champion", actor="cy")
        moves = registry_store.alias_history("churn", "champion")
        assert [(m.from_version, m.to_version, m.actor) for m in moves] == [
            (None, 1, "ana"),
            (1, 2, "bo"),
            (2, None, "cy"),
        ]
        assert all(m.alias == "champion" and m.name == "churn" for m in moves)
        assert [m.at for m in moves] == sorted(m.at for m in moves)
        everything = registry_store.alias_history("churn")
        assert [(m.alias, m.to_version) for m in everything] == [
            ("champion", 1),
            ("staging", 3),
            ("champion", 2),
            ("champion", None),
        ]

    def test_history_of_unknown_model_raises(self, registry_store: RegistryStore) -> None:
        with pytest.raises(ModelNotFoundError, match="Model 'ghost' does not exist"):
            registry_store.alias_history("ghost")

    def test_version_at_answers_which_version_was_live(self, registry_store: RegistryStore) -> None:
        _model_with_versions(registry_store, "churn", 3)
        registry_store.set_alias("churn", "champion", 1)
        time.sleep(0.005)
        registry_store.set_alias("churn", "champion", 2)
        time.sleep(0.005)
        registry_store.delete_alias("churn", "champion")
        time.sleep(0.005)
        registry_store.set_alias("churn", "champion", 3)
        t1, t2, t3, t4 = (m.at for m in registry_store.alias_history("churn", "champion"))
        assert t1 < t2 < t3 < t4

        def at(when: datetime) -> int | None:
            return registry_store.version_at("churn", "champion", when)

        assert at(t1 - MS) is None
        assert at(t1) == 1
        assert at(t2 - MS) == 1
        assert at(t2) == 2
        assert at(t3 - MS) == 2
        assert at(t3) is None
        assert at(t4 - MS) is None
        assert at(t4) == 3
        assert at(datetime.now(UTC) + timedelta(days=1)) == 3
        assert at(t2.replace(tzinfo=None)) == 2  # naive datetimes are UTC
        assert registry_store.version_at("churn", "never-set", t4) is None
        with pytest.raises(ModelNotFoundError, match="Model 'ghost' does not exist"):
            registry_store.version_at("ghost", "champion", t4)


class TestWorkspaces:
    @pytest.fixture
    def other(self, registry_store: RegistryStore, registry_env: RegistryEnv) -> RegistryStore:
        name = f"ws-{uuid.uuid4().hex[:10]}"
        ensure_workspace(engine_for(registry_env.db_url), name)
        return registry_store.for_workspace(name)

    def test_models_of_another_workspace_are_invisible(
        self, registry_store: RegistryStore, other: RegistryStore
    ) -> None:
        _model_with_versions(registry_store, "churn", 2)
        registry_store.set_alias("churn", "champion", 2)
        assert other.workspace != registry_store.workspace
        assert other.list_registered_models().items == []
        with pytest.raises(
            ModelNotFoundError, match=f"does not exist in workspace '{other.workspace}'"
        ):
            other.get_registered_model("churn")
        with pytest.raises(ModelNotFoundError):
            other.get_version_by_alias("churn", "champion")
        with pytest.raises(ModelNotFoundError):
            other.delete_registered_model("churn")

    def test_same_name_in_two_workspaces_is_independent(
        self, registry_store: RegistryStore, other: RegistryStore
    ) -> None:
        _model_with_versions(registry_store, "churn", 3)
        other.create_registered_model("churn")
        assert other.create_model_version("churn", "s3://other").version == 1
        other.set_alias("churn", "champion", 1)
        assert registry_store.get_registered_model("churn").aliases == {}
        assert registry_store.alias_history("churn") == []
        other.delete_registered_model("churn")
        assert registry_store.get_registered_model("churn").latest_version == 3

    def test_unknown_workspace_is_reported(self, registry_store: RegistryStore) -> None:
        ghost = registry_store.for_workspace(f"ws-missing-{uuid.uuid4().hex[:6]}")
        with pytest.raises(NotFoundError, match=f"Workspace '{ghost.workspace}' does not exist"):
            ghost.create_registered_model("churn")


def test_default_workspace_is_created_on_first_use(tmp_path: Path) -> None:
    from shipyard.registry.sql import SqlRegistryStore

    store = SqlRegistryStore(engine_for(f"sqlite:///{tmp_path / 'fresh.db'}"))
    assert store.workspace == "default"
    assert store.create_registered_model("churn").workspace == "default"
    assert [m.name for m in store.list_registered_models()] == ["churn"]
