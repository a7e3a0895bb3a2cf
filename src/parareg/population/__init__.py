"""Population workflows: many registrations on Dask, unbiased templates.

:mod:`~parareg.population.batch` runs independent registrations on a Dask
cluster (resumable, failures recorded, bit-identical at any worker count);
the workflows are built on it. Dask (``distributed``) is imported only when
registrations run.
"""

from . import template
from .batch import Cluster, Job, JobResult, RegistrationFailedWarning, register_many

__all__ = ["Cluster", "Job", "JobResult", "RegistrationFailedWarning", "register_many",
           "template"]
