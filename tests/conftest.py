"""Suite-wide settings: torch threads, the lanes (markers) and how the parallel run (pytest-xdist) shares work.

One intra-op thread for torch: the suite's tensors are small, so a second OpenMP thread buys nothing and,
when anything else holds the other core, its spin-waits make a pass ten to thirty times slower
(resnet1202 forward + backward on 2×3×8×8: 0.8 s of CPU with one thread, 21 s with two under load).
Tests that exercise thread settings set and restore their own.

Lanes (`bash scripts/test.sh` runs them all, two workers; `bash scripts/test.sh --fast` the inner loop):
- `e2e`: every test under tests/e2e (a real `streamlit run` and Chromium). Two xdist groups (the page-by-page
  measurements, and the rest), so each group's worker starts one server and one browser, and the unit tests
  fill the time around them.
- `slow`: a test that took more than ~4 s on the shared 2-core machine (about 2 s on an idle one), or one
  parametrised on a HEAVY_PRESETS network. Files whose owners mark their slow tests themselves need nothing
  here; SLOW lists the ones marked from here (by node id; an id without "[...]" marks every parametrisation),
  so that the fast lane stays under two minutes.
- Tests that share an expensive module-scoped fixture (GROUPED_FIXTURES) run on one worker, so that the
  fixture is built once, not once per worker.
"""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)

# Measured with `--durations` on the 2-core machine (2026-12-07, shared with other test runs): every test
# here took 4 s or more. A node id without "[...]" marks every parametrisation of that test.
SLOW = (
    "tests/training/test_train.py::test_short_default_experiment_shows_degradation",
    "tests/training/test_train.py::test_short_batchnorm_experiment_shows_batch_norm_speeds_training",
    "tests/training/test_distributed.py::test_one_ddp_step_equals_one_process_on_the_concatenated_batch",
    "tests/training/test_distributed.py::test_train_mode_batch_norm_differs_by_a_measured_amount",
    "tests/training/test_distributed.py::test_parameters_are_identical_on_both_ranks_after_k_steps",
    "tests/training/test_distributed.py::test_only_rank_0_prints_writes_the_csv_and_saves_checkpoints",
    "tests/training/test_recipe.py::test_the_recipe_command_on_a_tiny_cifar_folder",
    "tests/training/test_recipe.py::test_error80_warm_up_ends_when_the_last_ten_batches_are_below_80_percent_error",
    "tests/experiments/test_lesion.py::test_acceptance_at_a_shorter_training",
    "tests/experiments/test_landscape.py::test_acceptance_at_a_smaller_depth",
    "tests/experiments/test_pair.py::test_the_processes_do_not_rerun_the_callers_main_script",
    "tests/experiments/test_pair.py::test_two_processes_train_exactly_the_weights_of_one",
    "tests/experiments/test_pair.py::test_a_stop_ends_both_processes",
    "tests/app/test_train_page.py::test_a_local_two_process_run_streams_into_the_curves_and_hands_off",
    "tests/app/test_train_page.py::test_short_run_then_hand_a_trained_net_to_the_live_lab",
    "tests/app/test_train_page.py::test_cifar_folders_are_read_only_below_the_operators_data_folder",
    "tests/cli/test_cli_train.py::test_a_killed_worker_ends_the_run_on_every_rank_and_keeps_the_last_checkpoint",
    "tests/cli/test_cli_train.py::test_ctrl_c_stops_and_prints_what_was_learned",
    "tests/cli/test_cli.py::test_export_code_to_a_file_runs",
    "tests/cli/test_cli_live.py::test_the_real_command_prints_both_variants_side_by_side",
    "tests/app/test_train_page.py::test_stop_keeps_what_was_learned",
    "tests/app/test_train_page.py::test_a_long_run_is_announced_with_its_estimate_before_it_starts",
    "tests/app/test_live_page.py::test_a_gradient_flow_can_be_stopped_and_the_page_stays_usable",
    "tests/app/test_live_page.py::test_only_the_open_tab_runs",
    "tests/app/test_live_page.py::test_imagenet_weights_are_offered_only_for_torchvision_presets",
    "tests/app/test_app.py::test_edited_names_round_trip_through_the_link_and_the_json_export",
    "tests/app/test_app.py::test_collapsed_sections_draw_no_widgets_and_keep_their_values",
    "tests/training/test_train.py::test_same_seed_gives_identical_curves_and_weights",
    "tests/training/test_train.py::test_stopping_keeps_a_usable_model",
    "tests/training/test_train.py::test_loss_falls_on_digits_within_a_few_dozen_steps",
    "tests/training/test_train.py::test_warm_up_only_for_deep_nets",
    "tests/training/test_train.py::test_the_gpu_settings_run_on_cpu_too",
    "tests/training/test_train.py::test_every_net_sees_the_same_batches_in_the_same_order",
)
# A test parametrised on one of these presets is slow wherever it is (building one takes seconds: more than
# 40 M parameters, or 1,202 layers); the fast lane keeps the same test on the smaller presets of each family.
HEAVY_PRESETS = (
    "resnet101", "plain101", "resnet152", "plain152", "resnext101_32x8d", "plain_resnext101_32x8d",
    "resnext101_64x4d", "plain_resnext101_64x4d", "wide_resnet50_2", "plain_wide_resnet50_2", "wide_resnet101_2",
    "plain_wide_resnet101_2", "resnet1202", "plain1202",
    # the family since 2016 (issue 21): the deep and the wide ones
    "resnet101d", "plain_resnet101d", "resnet152d", "plain_resnet152d", "resnet200d", "plain_resnet200d",
    "convnext_small", "plain_convnext_small", "convnext_base", "plain_convnext_base",
)
# module-scoped fixtures that cost many seconds to build (tests/training/test_distributed.py: two DDP workers)
GROUPED_FIXTURES = ("two_workers",)


def _marked_slow(nodeid: str) -> bool:
    base, _, params = nodeid.partition("[")
    return nodeid in SLOW or base in SLOW or params.rstrip("]") in HEAVY_PRESETS


def _pin_group(item) -> None:
    """Put the item's xdist group into its node id, where pytest 9 reads it.

    pytest-xdist 3.8 sends a group to one worker by appending "@group" to `item._nodeid`; pytest 9 keeps the
    id in `item._id` and no longer reads `_nodeid`, so without this every group is silently spread over the
    workers (the DDP fixture then runs twice and each worker starts its own server and browser). Harmless
    where xdist's own suffix works: the group is the text after the last "@" either way.
    """
    names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                    for m in item.iter_markers("xdist_group")})
    if not names or not hasattr(item, "_id"):
        return
    from _pytest.nodeid import coerce_node_id  # pytest ≥ 9
    suffix = "@" + "_".join(names)
    if not item.nodeid.endswith(suffix):
        item._id = coerce_node_id(item.nodeid + suffix)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith("tests/e2e/"):
            item.add_marker(pytest.mark.e2e)
            # two groups, one server and browser each: the page-by-page measurements (projector sizes,
            # axe-core; ~8 minutes together) run beside the other browser tests instead of after them
            measuring = item.nodeid.startswith(("tests/e2e/test_projector.py", "tests/e2e/test_a11y.py",
                                                "tests/e2e/test_zh.py"))
            item.add_marker(pytest.mark.xdist_group("e2e-measure" if measuring else "e2e"))
        if _marked_slow(item.nodeid):
            item.add_marker(pytest.mark.slow)
        for name in GROUPED_FIXTURES:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(name))
        if config.getvalue("loadgroup") if hasattr(config.option, "loadgroup") else False:
            _pin_group(item)
    if hasattr(config, "workerinput"):
        # In a parallel run hand out the long tests first (xdist gives each worker the next test when it is
        # free), so that no worker is left with a long test at the end while the other one idles. Every
        # worker sorts the same way, as xdist requires; a serial run keeps the files' order.
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True, scope="session")
def _private_state_folder(tmp_path_factory):
    """Every run records its step times and prepared runs under the state folder: the suite keeps them in a
    folder of its own (one per worker; subprocesses inherit it), never in the person's ~/.cache."""
    import os

    from resnet_core.calibration import STATE_ENV
    saved = os.environ.get(STATE_ENV)
    os.environ[STATE_ENV] = str(tmp_path_factory.mktemp("state"))
    yield
    if saved is None:
        os.environ.pop(STATE_ENV, None)
    else:
        os.environ[STATE_ENV] = saved


@pytest.fixture()
def fresh_state(tmp_path, monkeypatch):
    """This test's own state folder (measured step times, prepared runs), the process's memory of them
    forgotten before and after: tests of the calibration and of prepared runs start from nothing."""
    from resnet_core import calibration
    from resnet_core.training import prepared
    monkeypatch.setenv(calibration.STATE_ENV, str(tmp_path / "state"))
    calibration.forget()
    prepared.forget()
    yield tmp_path / "state"
    calibration.forget()
    prepared.forget()
