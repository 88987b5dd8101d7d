"""Routing through model groups: which deployments a call goes to, in which order, and why.

- `groups`: the configuration values (groups, members and their capacity, tiers, routes);
- `features`: what routing reads from a request (`RequestFeatures`, local token estimates);
- `strategies`: how a group orders its members (weighted, least_busy, latency, cost, usage);
- `complexity`: the score of a request and the tier it picks;
- `state`: what this replica knows of each member (in flight, recent latency, capacity seen);
- `capacity`: members' rpm/tpm across replicas (Redis) and calls in flight;
- `router` and `decision`: `Router.route` and the `Routing` it returns.
"""
