#!/bin/sh
# Patroni's post_bootstrap script (patroni-node1.yml): run once, on the node that initialises
# the cluster, with a superuser connection string as its only argument and
# PGOPTIONS='-c synchronous_commit=local' (no standby exists yet).
#
# Creates the hub's role, not a superuser, and the database it owns. Set the role's password
# afterwards, from a machine that keeps it secret:
#   psql -d 'postgres://postgres@PRIMARY/postgres' -c '\password poros'
set -eu
psql -X -q -v ON_ERROR_STOP=1 -d "$1" \
    -c 'CREATE ROLE poros LOGIN' \
    -c 'CREATE DATABASE poros OWNER poros'
