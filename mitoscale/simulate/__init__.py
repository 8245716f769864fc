"""mitoscale.simulate"""
