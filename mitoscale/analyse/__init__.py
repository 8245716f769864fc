"""mitoscale.analyse"""
