"""mitoscale.train"""
