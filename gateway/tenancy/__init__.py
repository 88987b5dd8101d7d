"""Who may call, and how much.

Authentication, API-key grants, rate limits, budgets, and the admin API over the store.
"""
