"""Build the Maven module once and start Java main classes from its two classpaths."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import attrs

from tests.compat.processes import child_env

JAVA_DIR = Path(__file__).resolve().parent / "java"
BUILD_TIMEOUT = 900.0

# RocketMQ's store unmaps files through DirectByteBuffer internals; on Java 9+ that needs
# these opens, else the broker's shutdown hook dies with InaccessibleObjectException.
JAVA17_OPENS = (
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
)

_LOGBACK = """<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>${rq.log.file:-rocketmq.log}</file>
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level [%thread] %logger{0} - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
"""


class JavaBuildError(RuntimeError):
    pass


def _mvn(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mvn", "-B", "-q", *args, "package"],
        cwd=JAVA_DIR,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )


_CLIENT_JAR = JAVA_DIR / "client" / "target" / "compat-client-1.0.jar"
_CLASSPATHS = (
    JAVA_DIR / "client" / "target" / "classpath.txt",
    JAVA_DIR / "server" / "target" / "classpath.txt",
)


def _up_to_date() -> bool:
    """The jar is newer than the sources, the classpaths newer than the poms, and every jar exists."""
    outputs = (_CLIENT_JAR, *_CLASSPATHS)
    if not all(path.exists() for path in outputs):
        return False
    poms = max(pom.stat().st_mtime for pom in JAVA_DIR.glob("**/pom.xml"))
    sources = max(src.stat().st_mtime for src in (JAVA_DIR / "client" / "src").rglob("*"))
    # build-classpath leaves an unchanged classpath file untouched, so only poms can outdate it.
    if min(p.stat().st_mtime for p in _CLASSPATHS) < poms:
        return False
    if _CLIENT_JAR.stat().st_mtime < max(poms, sources):
        return False
    jars = ":".join(path.read_text().strip() for path in _CLASSPATHS).split(":")
    return all(Path(jar).exists() for jar in jars if jar)


def build(home: Path) -> Jvm:
    """``mvn package`` unless the outputs are current (offline first: ~/.m2 is usually warm).

    ``home`` receives the ``conf/logback_*.xml`` files the namesrv, broker and mqadmin insist on.
    """
    missing = [tool for tool in ("mvn", "java") if shutil.which(tool) is None]
    if missing:
        raise JavaBuildError(f"{' and '.join(missing)} not found; run scripts/java-setup.sh")
    if not _up_to_date():
        done = _mvn(["-o"])
        if done.returncode != 0:
            done = _mvn([])
        if done.returncode != 0:
            raise JavaBuildError(f"mvn package failed in {JAVA_DIR}:\n{done.stdout}\n{done.stderr}")
    conf = home / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    for name in ("namesrv", "broker", "tools"):
        (conf / f"logback_{name}.xml").write_text(_LOGBACK)
    client_deps, server_deps = (path.read_text().strip() for path in _CLASSPATHS)
    return Jvm(
        client_classpath=f"{_CLIENT_JAR}:{client_deps}",
        server_classpath=server_deps,
        home=home,
    )


@attrs.frozen
class Jvm:
    client_classpath: str
    server_classpath: str
    home: Path

    def command(
        self,
        main_class: str,
        args: Sequence[str],
        *,
        server: bool,
        work_dir: Path,
        heap: str,
        extra_flags: Sequence[str] = (),
    ) -> list[str]:
        """``java ... main_class args`` with every file the JVM writes kept under ``work_dir``."""
        return [
            "java",
            f"-Xms{heap}" if server else "-Xms32m",
            f"-Xmx{heap}",
            *JAVA17_OPENS,
            *extra_flags,
            f"-Duser.home={work_dir}",
            f"-Drocketmq.home.dir={self.home}",
            f"-Drq.log.file={work_dir / 'rocketmq.log'}",
            f"-Drocketmq.client.logRoot={work_dir / 'clientlogs'}",
            f"-Drocketmq.client.localOffsetStoreDir={work_dir / 'offsets'}",
            "-cp",
            self.server_classpath if server else self.client_classpath,
            main_class,
            *args,
        ]

    def env(self) -> dict[str, str]:
        return child_env(ROCKETMQ_HOME=str(self.home))

    def run_client(
        self,
        sub_command: str,
        options: dict[str, str],
        *,
        work_dir: Path,
        timeout: float = 120.0,
        stdin: str | None = None,
        system_properties: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """One ``compat.Main`` program; it checks itself and exits non-zero on any failure."""
        work_dir.mkdir(parents=True, exist_ok=True)
        args = [sub_command]
        for key, value in options.items():
            args += [f"--{key}", value]
        # Short-lived client JVMs: C1 only and the serial collector start fastest on 2 cores.
        cmd = self.command(
            "compat.Main",
            args,
            server=False,
            work_dir=work_dir,
            heap="192m",
            extra_flags=(
                "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC",
                *(f"-D{k}={v}" for k, v in (system_properties or {}).items()),
            ),
        )
        return subprocess.run(
            cmd,
            env=self.env(),
            cwd=work_dir,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def check_program(done: subprocess.CompletedProcess[str], what: str, more: str = "") -> None:
    """The program exited 0 and said OK (its last line), else fail with what it printed."""
    last = done.stdout.strip().splitlines()[-1:] or ["<no output>"]
    assert done.returncode == 0, (
        f"{what} exited {done.returncode}: {last[0]}\n"
        f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-2000:]}\n--- {more}"
    )
    assert last[0].startswith("OK "), done.stdout
