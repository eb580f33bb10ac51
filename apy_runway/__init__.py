"""apy-runway: will this DeFi pool keep its APY over the next 30 days?"""
