"""A server shared by the tests of a module, and DICOMweb clients on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dicomweb_client.api import DICOMwebClient

from tests.conftest import Api, ServerProcess

ROOT = "/dicom-web"


class Site:
    """A `pharos serve` process, an HTTP client on it and a DICOMweb client on its root."""

    def __init__(self, workdir: Path, config: dict[str, object]):
        self.server = ServerProcess(workdir, config).start()
        self.api = Api(base_url=self.server.url, timeout=60)
        self.api.server = self.server
        self.client = DICOMwebClient(self.server.url + ROOT)

    def upload(self, data: bytes) -> dict[str, str]:
        response = self.api.post("/instances", content=data)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def close(self) -> None:
        self.api.close()
        self.server.stop()


def shared_site(workdir: Path, config: dict[str, object]) -> Iterator[Site]:
    site = Site(workdir, config)
    try:
        yield site
    finally:
        site.close()
