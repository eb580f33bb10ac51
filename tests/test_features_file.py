"""The binary features file: what `publish` writes is what the Lambda reads,
numpy alone can read it, and every malformed part is refused by name."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import struct

import numpy as np
import pytest
from fixtures.tiny_model import feature_data, feature_file

from inference import contracts, features


def test_round_trip_keeps_every_value():
    columns, contract = feature_data(30)
    columns["tvl_usd"][3] = None
    columns["chain"][4] = None
    columns["snapshot_date"][5] = None
    table = features.decode(features.encode(columns, contract, source="test", allow_shrink=True))
    assert table.pool_ids == columns["pool_id"]
    assert table.header["row_count"] == 30 and table.header["allow_shrink"] is True
    assert table.header["feature_date"] == "2025-06-05"
    assert table.feature_dates[5] is None and table.feature_dates[0] == "2025-06-05"
    for name in contract["numeric"] + ["observed_day_count"]:
        expected = [math.nan if v is None else float(v) for v in columns[name]]
        np.testing.assert_array_equal(table.numeric_column(name), expected)
    assert table.text_column("chain") == columns["chain"]
    assert table.text_column("symbol") == columns["symbol"]
    assert "symbol" in table.categorical_columns and "apy" in table.numeric_columns


def test_numpy_alone_reads_it():
    """As the module's docstring says: magic, header length, JSON header, .npz body."""
    data = feature_file(12)
    assert data[:8] == contracts.FEATURES_MAGIC
    (length,) = struct.unpack("<Q", data[8:16])
    header = json.loads(data[16 : 16 + length])
    body = data[16 + length :]
    assert hashlib.sha256(body).hexdigest() == header["body_sha256"]
    with np.load(io.BytesIO(body), allow_pickle=False) as arrays:
        assert arrays["numeric"].shape == (12, len(header["numeric_columns"]))
        assert arrays["numeric"].dtype == np.float64
        assert arrays["codes"].dtype == np.int32
        assert arrays["pool_id"].tolist()[0] == "pool-00000"
        assert arrays["snapshot_date"].dtype == np.dtype("datetime64[D]")
        j = header["categorical_columns"].index("chain")
        vocabulary = arrays[f"vocabulary_{j}"].tolist()
        assert set(vocabulary) <= {"Ethereum", "Arbitrum", "Base"}


def _with_header(data: bytes, **changes) -> bytes:
    header, offset = features.read_header(data)
    header.update(changes)
    encoded = json.dumps(header).encode()
    return contracts.FEATURES_MAGIC + struct.pack("<Q", len(encoded)) + encoded + data[offset:]


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda d: b"NOTAFILE" + d[8:], "does not start with"),
        (lambda d: d[:8] + struct.pack("<Q", 10**9) + d[16:], "header length"),
        (lambda d: _with_header(d, format="apy-runway/latest-features/columns/v1"), "format"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "sha256"),
        (lambda d: d + b"\0", "bytes, the header says"),
        (lambda d: _with_header(d, row_count=99), "'numeric'"),
        (lambda d: _with_header(d, row_count="12"), "row_count"),
        (lambda d: _with_header(d, numeric_columns=["apy"]), "'numeric'"),
    ],
)
def test_a_malformed_file_is_refused_by_name(corrupt, message):
    with pytest.raises(features.FeatureContractError, match=message):
        features.decode(corrupt(feature_file(12)))


def test_codes_outside_their_vocabulary_are_refused():
    columns, contract = feature_data(5)
    data = features.encode(columns, contract)
    header, offset = features.read_header(data)
    with np.load(io.BytesIO(data[offset:]), allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["codes"][0, 0] = 99
    from inference.model.artefact import npz_bytes

    body = npz_bytes(arrays)
    header.update(body_sha256=hashlib.sha256(body).hexdigest(), body_size_bytes=len(body))
    encoded = json.dumps(header).encode()
    tampered = contracts.FEATURES_MAGIC + struct.pack("<Q", len(encoded)) + encoded + body
    with pytest.raises(features.FeatureContractError, match="outside its vocabulary"):
        features.decode(tampered)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c, k: c.pop("chain"), "lack columns \\['chain'\\]"),
        (
            lambda c, k: c["pool_id"].__setitem__(1, c["pool_id"][0]),
            "pool_id 'pool-00000' is listed more than once",
        ),
        (lambda c, k: c["pool_id"].__setitem__(3, ""), "pool_id is empty in row 3"),
        (
            lambda c, k: c["snapshot_date"].__setitem__(4, "2999-01-01"),
            "feature day 2999-01-01 \\(pool 'pool-00004'; 1 pool\\(s\\) after .*\\) is after "
            "publication at .* plus one day",
        ),
        (lambda c, k: c["apy"].__setitem__(2, "5%"), "column 'apy', row 2"),
        (lambda c, k: c["symbol"].pop(), "different lengths"),
        (lambda c, k: c["snapshot_date"].__setitem__(0, "yesterday"), "snapshot_date"),
    ],
)
def test_publish_refuses_columns_the_scorer_could_not_read(edit, message):
    columns, contract = feature_data(5)
    edit(columns, contract)
    with pytest.raises(features.FeatureContractError, match=message):
        features.encode(columns, contract)


def test_booleans_and_dates_are_written_as_numpy_reads_them():
    columns, contract = feature_data(3)
    columns["is_active"] = [True, False, None]
    columns["snapshot_date"] = [dt.date(2025, 6, 5), "2025-06-04", dt.datetime(2025, 6, 3, 12)]
    table = features.decode(features.encode(columns, contract))
    np.testing.assert_array_equal(table.numeric_column("is_active"), [1.0, 0.0, np.nan])
    assert table.feature_dates == ["2025-06-05", "2025-06-04", "2025-06-03"]
