"""kafka-python's admin client against a Kafka cluster (t97 runs it on the
simulator): list topics, describe log dirs, create a topic, run a
reassignment to completion, set and read a broker config.

Usage: sim_admin.py BOOTSTRAP TOPIC
Prints one JSON object with what the client saw; the Rust test compares it
with Guardian's own client. Exits non-zero, with the reason, on any error or
when the reassignment does not complete within 60 s.
"""
import json
import sys
import time

from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

bootstrap, topic = sys.argv[1], sys.argv[2]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="t97-python",
                         request_timeout_ms=10000)
out = {}

brokers = sorted(b["broker_id"] for b in admin.describe_cluster()["brokers"])
out["brokers"] = brokers
out["topics"] = sorted(admin.list_topics())

# DescribeLogDirs of the first broker: {dir: {"topic-partition": size}}.
dirs = {}
for b in admin.describe_log_dirs(brokers=[brokers[0]]):
    for d in b["log_dirs"]:
        assert d["error_code"] == 0, d
        dirs[d["log_dir"]] = {
            "%s-%d" % (t["name"], p["partition_index"]): p["partition_size"]
            for t in d["topics"] for p in t["partitions"]
        }
out["log_dirs"] = dirs

# A new topic, RF 2, then a move of partition 0 off both its replicas.
admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=2)])
desc = {t["name"]: t for t in admin.describe_topics([topic])}[topic]
before = sorted(next(p for p in desc["partitions"] if p["partition_index"] == 0)["replica_nodes"])
target = [b for b in brokers if b not in before][:2]
out["before"], out["target"] = before, target
tp = TopicPartition(topic, 0)
errors = admin.alter_partition_reassignments({tp: target})
if errors.get(tp) is not None:
    sys.exit("reassignment refused: %r" % errors[tp])
deadline = time.monotonic() + 60
while True:
    ongoing = admin.list_partition_reassignments([tp])
    desc = {t["name"]: t for t in admin.describe_topics([topic])}[topic]
    now = next(p for p in desc["partitions"] if p["partition_index"] == 0)
    if not ongoing and sorted(now["replica_nodes"]) == sorted(target):
        break
    if time.monotonic() > deadline:
        sys.exit("reassignment of %s-0 not done after 60 s: %r %r" % (topic, ongoing, now))
    time.sleep(0.1)
out["after"] = sorted(now["replica_nodes"])
out["leader"] = now["leader_id"]

# A broker config: set with IncrementalAlterConfigs, read back.
b = str(brokers[0])
admin.alter_configs([ConfigResource(ConfigResourceType.BROKER, b,
                                    configs={"leader.replication.throttled.rate": "54321"})])
cfg = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, b,
                                             configs={"leader.replication.throttled.rate": None})])
out["config"] = cfg
admin.close()
print(json.dumps(out, default=str))
