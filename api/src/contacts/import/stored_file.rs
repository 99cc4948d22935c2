//! An import's file in the database, in chunks (`import_file_chunks`): written as the
//! upload is read and read back as a stream by the runner, so that neither ever holds the
//! whole file.

use std::io::{self, Read};

use parley_entity::import_file_chunk;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::errors::{AppError, AppResult};

/// Chunks fetched ahead of the reader: enough to keep it busy while the next is fetched.
const CHUNKS_AHEAD: usize = 2;

/// Stores the file's chunk number `seq` (from 0).
pub async fn store_chunk(
    db: &impl ConnectionTrait,
    job_id: Uuid,
    seq: usize,
    content: Vec<u8>,
) -> AppResult<()> {
    let seq = i32::try_from(seq)
        .map_err(|_| AppError::internal(anyhow::anyhow!("too many chunks in one file")))?;
    // Without RETURNING, which would send the chunk back.
    import_file_chunk::Entity::insert(import_file_chunk::ActiveModel {
        job_id: Set(job_id),
        seq: Set(seq),
        content: Set(content),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The job's file as a blocking reader (for a blocking thread), fed chunk by chunk by a
/// task that fetches them in order. The task ends with the reader, or aborts with the
/// returned handle.
pub fn open(db: DatabaseConnection, job_id: Uuid) -> (ChunkReader, tokio::task::JoinHandle<()>) {
    let (sender, chunks) = mpsc::channel(CHUNKS_AHEAD);
    let fetcher = tokio::spawn(async move {
        let mut next = 0;
        loop {
            let found = import_file_chunk::Entity::find()
                .filter(import_file_chunk::Column::JobId.eq(job_id))
                .filter(import_file_chunk::Column::Seq.gte(next))
                .order_by_asc(import_file_chunk::Column::Seq)
                .one(&db)
                .await;
            let failure = match found {
                Ok(Some(chunk)) => {
                    next = chunk.seq + 1;
                    if sender.send(Ok(chunk.content)).await.is_err() {
                        return; // the reader stopped
                    }
                    continue;
                }
                Ok(None) if next > 0 => return,
                Ok(None) => io::Error::new(io::ErrorKind::NotFound, "the import's file is missing"),
                Err(e) => io::Error::other(e),
            };
            let _ = sender.send(Err(failure)).await;
            return;
        }
    });
    (ChunkReader::new(chunks), fetcher)
}

/// Reads the chunks a channel delivers, in order, as one stream of bytes.
pub struct ChunkReader {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    position: usize,
}

impl ChunkReader {
    pub fn new(chunks: mpsc::Receiver<io::Result<Vec<u8>>>) -> Self {
        Self {
            chunks,
            current: Vec::new(),
            position: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.current = chunk;
                    self.position = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_read_as_one_stream_and_errors_pass_through() {
        let (sender, chunks) = mpsc::channel(8);
        for chunk in [&b"Name,"[..], b"", b"Phone\nA", b",1\n"] {
            sender.try_send(Ok(chunk.to_vec())).unwrap();
        }
        drop(sender);
        let mut text = String::new();
        ChunkReader::new(chunks).read_to_string(&mut text).unwrap();
        assert_eq!(text, "Name,Phone\nA,1\n");

        let (sender, chunks) = mpsc::channel(8);
        sender.try_send(Ok(b"Name".to_vec())).unwrap();
        sender.try_send(Err(io::Error::other("gone"))).unwrap();
        let mut read = Vec::new();
        let error = ChunkReader::new(chunks).read_to_end(&mut read).unwrap_err();
        assert_eq!(error.to_string(), "gone");
        assert_eq!(read, b"Name");
    }
}
