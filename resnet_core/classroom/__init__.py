"""Classes: a teacher leads, students follow, the teacher sees the class; state in a real database.

- db.py: the database (SQLite file by default, PostgreSQL by URL), one connection per process, migrations
- rules.py: what a class accepts (codes, names, pages, answers), bounded and checked; the secret's hash
- store.py: the Classroom: teacher actions (secret required), student actions (own member id only)
"""

from resnet_core.classroom.db import Database, DatabaseError, connect, default_location, migrate
from resnet_core.classroom.rules import ClassError, NotAllowed
from resnet_core.classroom.store import ClassInfo, Classroom, Membership, Progress, Push, ResultRow, TeacherKey

__all__ = ["ClassError", "ClassInfo", "Classroom", "Database", "DatabaseError", "Membership", "NotAllowed",
           "Progress", "Push", "ResultRow", "TeacherKey", "connect", "default_location", "migrate"]
