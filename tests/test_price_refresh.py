"""`tierscan prices refresh`: the three parsers against recorded responses (tests/data/prices/, in each
API's documented shape), and the real aiohttp code path against a local server on 127.0.0.1 that serves
them, paginating as the APIs do (Google by nextPageToken, Azure by NextPageLink)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tierscan.scanner.cli import cli
from tierscan.scanner.pricing.refresh import (
    Endpoints,
    parse_aws_offer,
    parse_azure_items,
    parse_gcp_skus,
    refresh,
    render_override,
)
from tierscan.scanner.pricing.table import PriceTable

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

DATA = Path(__file__).parent / "data" / "prices"
API_KEY = "test-key"


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


# --- parsers --------------------------------------------------------------------------------------------


def test_aws_offer_takes_the_first_band_and_scales_requests_to_per_1000() -> None:
    classes = parse_aws_offer(load("aws-ap-east-1.json"), "USD")
    assert classes["STANDARD"] == pytest.approx({"storage_gb_month": 0.025, "get_per_1000": 0.00044})
    assert classes["STANDARD_IA"] == pytest.approx(
        {"storage_gb_month": 0.0138, "retrieval_gb": 0.01, "get_per_1000": 0.0011}
    )
    assert classes["DEEP_ARCHIVE"] == pytest.approx({"storage_gb_month": 0.002})
    assert set(classes) == {"STANDARD", "STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"}


def test_aws_china_offer_is_read_in_cny() -> None:
    classes = parse_aws_offer(load("aws-cn-north-1.json"), "CNY")
    assert classes["STANDARD"]["storage_gb_month"] == pytest.approx(0.1755)
    assert parse_aws_offer(load("aws-cn-north-1.json"), "USD") == {}


def test_gcp_skus_pick_the_region_the_class_and_the_paid_tier() -> None:
    skus = load("gcp-skus-1.json")["skus"] + load("gcp-skus-2.json")["skus"]
    hk = parse_gcp_skus(skus, "asia-east2")
    assert set(hk) == {"STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"}
    assert hk["ARCHIVE"] == pytest.approx({"storage_gb_month": 0.0025})
    assert hk["COLDLINE"] == pytest.approx({"storage_gb_month": 0.007})
    assert hk["NEARLINE"] == pytest.approx(
        {"get_per_1000": 0.001, "retrieval_gb": 0.01, "storage_gb_month": 0.016}
    )
    # Class B operations: the first tier is free; the list price is the first paid one.
    assert hk["STANDARD"] == pytest.approx({"get_per_1000": 0.0004, "storage_gb_month": 0.023})
    # The US multi-region SKU is not us-central1's price.
    assert parse_gcp_skus(skus, "us-central1")["STANDARD"]["storage_gb_month"] == pytest.approx(0.020)


def test_azure_items_keep_lrs_block_blobs_of_the_region_first_tier() -> None:
    items = load("azure-eastasia-1.json")["Items"] + load("azure-eastasia-2.json")["Items"]
    classes = parse_azure_items(items, "eastasia")
    assert classes["HOT"] == pytest.approx({"storage_gb_month": 0.024, "get_per_1000": 0.00044})
    assert classes["COOL"] == pytest.approx(
        {"storage_gb_month": 0.015, "retrieval_gb": 0.01, "get_per_1000": 0.001}
    )
    assert classes["ARCHIVE"] == pytest.approx(
        {"storage_gb_month": 0.002, "retrieval_gb": 0.022, "get_per_1000": 0.55}
    )
    assert set(classes) == {"HOT", "COOL", "COLD", "ARCHIVE"}


# --- the HTTP path against a local server ----------------------------------------------------------------


def _app(hits: list[str]) -> web.Application:
    async def aws(request: web.Request) -> web.Response:
        hits.append(request.path)
        path = DATA / f"aws-{request.match_info['region']}.json"
        return (
            web.Response(body=path.read_bytes(), content_type="application/json")
            if path.exists()
            else web.Response(status=404)
        )

    async def gcp(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        if request.query.get("key") != API_KEY:
            return web.json_response({"error": {"code": 403}}, status=403)
        page = "gcp-skus-2.json" if request.query.get("pageToken") == "page-2" else "gcp-skus-1.json"
        return web.Response(body=(DATA / page).read_bytes(), content_type="application/json")

    async def azure(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        if "armRegionName eq 'eastasia'" not in request.query.get("$filter", ""):
            return web.json_response({"Items": [], "NextPageLink": None})
        page = "azure-eastasia-2.json" if request.query.get("$skip") == "100" else "azure-eastasia-1.json"
        base = f"{request.scheme}://{request.host}"
        return web.Response(
            text=(DATA / page).read_text(encoding="utf-8").replace("{base}", base),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/offers/v1.0/{partition}/AmazonS3/current/{region}/index.json", aws)
    app.router.add_get("/v1/services/95FF-2EF5-5EA1/skus", gcp)
    app.router.add_get("/api/retail/prices", azure)
    return app


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    """The recorded responses, served on 127.0.0.1 from a thread with its own event loop."""
    hits: list[str] = []
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(_app(hits))
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def endpoints(base: str) -> Endpoints:
    return Endpoints(aws=base, aws_cn=base, gcp=base, azure=base)


def test_refresh_follows_pages_and_reports_missing_regions(server: tuple[str, list[str]]) -> None:
    base, hits = server
    regions = {"s3": ["ap-east-1", "cn-north-1", "eu-west-9"], "gcs": ["asia-east2"], "azure": ["eastasia"]}
    result = asyncio.run(refresh(regions, endpoints(base), gcp_api_key=API_KEY))
    got = {(f.provider, f.region): f for f in result.fetched}
    assert set(got) == {
        ("s3", "ap-east-1"),
        ("s3", "cn-north-1"),
        ("gcs", "asia-east2"),
        ("azure", "eastasia"),
    }
    assert got[("s3", "cn-north-1")].currency == "CNY"
    assert "/offers/v1.0/cn/AmazonS3/current/cn-north-1/index.json" in hits  # the aws-cn partition
    assert got[("azure", "eastasia")].classes["ARCHIVE"]["storage_gb_month"] == pytest.approx(0.002)  # page 2
    assert got[("gcs", "asia-east2")].classes["ARCHIVE"]["storage_gb_month"] == pytest.approx(
        0.0025
    )  # page 2
    assert sum("pageToken=page-2" in h for h in hits) == 1
    assert result.errors == [
        "s3/eu-west-9: HTTP 404 from " + f"{base}/offers/v1.0/aws/AmazonS3/current/eu-west-9/index.json"
    ]


def test_refresh_without_a_gcp_key_skips_gcs_and_says_so(server: tuple[str, list[str]]) -> None:
    base, _ = server
    result = asyncio.run(refresh({"gcs": ["asia-east2"]}, endpoints(base)))
    assert result.fetched == [] and "API key" in result.errors[0]


def test_the_override_file_loads_over_the_builtin_table_with_its_provenance(
    server: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, _ = server
    result = asyncio.run(refresh({"s3": ["ap-east-1", "cn-north-1"], "azure": ["eastasia"]}, endpoints(base)))
    path = tmp_path / "prices.yaml"
    path.write_text(render_override(result.fetched, date(2026, 11, 25)), encoding="utf-8")
    table = PriceTable.load(path)
    standard = table.price_for("s3", "STANDARD", "ap-east-1")
    assert standard.storage_gb_month == pytest.approx(0.025)
    assert standard.source == f"{base}/offers/v1.0/aws/AmazonS3/current/ap-east-1/index.json"
    assert standard.as_of == date(2026, 11, 25) and not standard.estimate
    beijing = table.price_for("s3", "STANDARD", "cn-north-1")
    assert beijing.currency == "CNY" and beijing.storage_gb_month == pytest.approx(0.1755 * beijing.usd_rate)
    # A fee the response did not carry keeps the built-in figure.
    assert (
        table.price_for("s3", "DEEP_ARCHIVE", "ap-east-1").retrieval_gb
        == PriceTable.builtin().price_for("s3", "DEEP_ARCHIVE", "ap-east-1").retrieval_gb
    )
    assert table.price_for("azure", "Cold", "eastasia").retrieval_gb == pytest.approx(0.03)


def test_cli_writes_the_file_and_exits_1_when_a_region_failed(
    server: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, _ = server
    out = tmp_path / "fetched.yaml"
    args = ["prices", "refresh", "-o", str(out), "--aws-endpoint", base, "--azure-endpoint", base]
    ok = CliRunner().invoke(cli, [*args, "--region", "s3:ap-east-1", "--region", "azure:eastasia"])
    assert ok.exit_code == 0, ok.output
    doc = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert set(doc["providers"]) == {"s3", "azure"}
    partial = CliRunner().invoke(cli, [*args, "--region", "s3:ap-east-1", "--region", "s3:xx-none-1"])
    assert partial.exit_code == 1 and "xx-none-1" in partial.output
    bad = CliRunner().invoke(cli, [*args, "--region", "ap-east-1"])
    assert bad.exit_code == 2 and "PROVIDER:REGION" in bad.output
