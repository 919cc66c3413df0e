"""Starts moto server with its Kinesis reshard made to behave as AWS's.

moto 5 keeps routing new records to a shard after SplitShard closed it, and
re-puts the parent's records when splitting (with two arguments swapped).
On AWS a closed shard keeps its records and takes no new ones, which is
what `sluice consume`'s reshard test needs. Everything else is moto as is.

Run as: python3 moto_kinesis_as_aws.py -H 127.0.0.1 -p <port>
"""

import sys
from collections import OrderedDict

import moto.kinesis.models as models
from moto.server import main

_get_shard_for_key = models.Stream.get_shard_for_key
_split_shard = models.Stream.split_shard


def get_shard_for_key(self, partition_key, explicit_hash_key):
    """Only open shards take new records."""
    every = self.shards
    self.shards = OrderedDict((k, s) for k, s in every.items() if s.is_open)
    try:
        return _get_shard_for_key(self, partition_key, explicit_hash_key)
    finally:
        self.shards = every


def split_shard(self, shard_to_split, new_starting_hash_key):
    """The parent keeps its records; nothing is put again."""
    shard = self.shards[shard_to_split]
    kept = OrderedDict(shard.records)
    self.put_record = lambda *args, **kwargs: (None, None)
    try:
        _split_shard(self, shard_to_split, new_starting_hash_key)
    finally:
        del self.put_record
    shard.records = kept


models.Stream.get_shard_for_key = get_shard_for_key
models.Stream.split_shard = split_shard

if __name__ == "__main__":
    main(sys.argv[1:])
