//! One ELF object (the program or a library) reduced to what the analysis needs: its code,
//! the names of its functions, what it exports and imports, its entry points, and the
//! function addresses its data holds.
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use goblin::elf::{Elf, header, program_header, reloc, section_header, sym};

use crate::Error;
use crate::mapped::Mapped;

/// Where a reference points: into the same object, or to a symbol resolved in the global
/// scope by name (the loader's lookup, so interposition is honored).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Local(u64),
    Import(String),
}

/// A loaded ELF object.
#[derive(Debug)]
pub struct Object {
    pub path: PathBuf,
    /// A short name for chains: the file name without its `.so…` suffix.
    pub name: String,
    pub soname: Option<String>,
    pub needed: Vec<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    pub interpreter: Option<String>,
    /// ET_EXEC: absolute addresses, so immediates and data words may hold code addresses.
    pub fixed_address: bool,
    /// Entry points the loader runs: e_entry, DT_INIT/DT_FINI, init/fini/preinit arrays,
    /// IRELATIVE resolvers; each with what it is.
    pub entries: Vec<(u64, String)>,
    /// Defined, visible function symbols of the dynamic table: name → addresses.
    pub exports: HashMap<String, Vec<u64>>,
    /// Function names by address (symbol table and dynamic table), sorted by address.
    pub names: Vec<(u64, String)>,
    /// GOT slot address → what the loader puts there.
    pub got: HashMap<u64, Target>,
    /// Function addresses stored in data (relocations, or words of a fixed-address object),
    /// each with the address of the word that holds it.
    pub data_refs: Vec<(u64, Target)>,
    /// Data words that hold the address of other data (a table of tables): (word, target).
    pub data_pointers: Vec<(u64, u64)>,
    /// Where the data objects the symbol tables name start.
    pub data_symbols: Vec<u64>,
    /// Executable sections: (address, their bytes' place in the file).
    code: Vec<(u64, Range<usize>)>,
    /// Loadable segments: (address, size in the file, offset in the file).
    segments: Vec<(u64, u64, u64)>,
    file: Mapped,
}

/// The most machine code one object may hold: more than any program this project has met
/// (chromium: 236 MB), and a bound on the memory its decoded instructions take.
const MAX_CODE: u64 = 256 << 20;

const R_X86_64_64: u32 = reloc::R_X86_64_64;
const R_GLOB_DAT: u32 = reloc::R_X86_64_GLOB_DAT;
const R_JUMP_SLOT: u32 = reloc::R_X86_64_JUMP_SLOT;
const R_RELATIVE: u32 = reloc::R_X86_64_RELATIVE;
const R_IRELATIVE: u32 = reloc::R_X86_64_IRELATIVE;

impl Object {
    /// Maps and parses the ELF file at `path`.
    pub fn load(path: &Path) -> Result<Object, Error> {
        let file = Mapped::open(path)?;
        let data = file.bytes();
        if !data.starts_with(b"\x7fELF") {
            return Err(Error::NotElf(path.to_path_buf()));
        }
        let elf = Elf::parse(data).map_err(|e| Error::BadElf(path.to_path_buf(), e.to_string()))?;
        if elf.header.e_machine != header::EM_X86_64 || !elf.is_64 {
            return Err(Error::NotX86_64(
                path.to_path_buf(),
                header::machine_to_str(elf.header.e_machine).to_string(),
            ));
        }
        let code = code_ranges(&elf, data);
        let code_bytes: u64 = code.iter().map(|c| c.1.len() as u64).sum();
        if code_bytes > MAX_CODE {
            return Err(Error::TooMuchCode(path.to_path_buf(), code_bytes >> 20));
        }
        let mut obj = Object::new(path, &elf, code);
        obj.read_symbols(&elf);
        obj.read_relocations(&elf);
        obj.read_relr(&elf, data);
        obj.read_entries(&elf, data);
        if obj.fixed_address {
            obj.scan_data_words(&elf, data);
        }
        drop(elf);
        obj.file = file;
        Ok(obj)
    }

    /// The object's names, paths and load information; symbols, relocations and entries
    /// come after.
    fn new(path: &Path, elf: &Elf, code: Vec<(u64, Range<usize>)>) -> Object {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match file_name.find(".so") {
            Some(i) if i > 0 => file_name[..i].to_string(),
            _ => file_name.clone(),
        };
        Object {
            path: path.to_path_buf(),
            name,
            soname: elf.soname.map(str::to_string),
            needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
            rpath: split_paths(&elf.rpaths),
            runpath: split_paths(&elf.runpaths),
            interpreter: elf.interpreter.map(str::to_string),
            fixed_address: elf.header.e_type == header::ET_EXEC,
            entries: Vec::new(),
            exports: HashMap::new(),
            names: Vec::new(),
            got: HashMap::new(),
            data_refs: Vec::new(),
            data_pointers: Vec::new(),
            data_symbols: Vec::new(),
            code,
            segments: elf
                .program_headers
                .iter()
                .filter(|p| p.p_type == program_header::PT_LOAD)
                .map(|p| (p.p_vaddr, p.p_filesz, p.p_offset))
                .collect(),
            file: Mapped::empty(),
        }
    }

    /// The executable sections: (address, bytes).
    pub fn code_sections(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let data = self.file.bytes();
        self.code
            .iter()
            .map(move |(addr, range)| (*addr, &data[range.clone()]))
    }

    /// Whether `addr` lies in one of the executable sections.
    pub fn is_code(&self, addr: u64) -> bool {
        self.code
            .iter()
            .any(|(start, r)| addr >= *start && addr < start + r.len() as u64)
    }

    /// Whether `addr` lies in what a loadable segment reads from the file.
    pub fn is_mapped(&self, addr: u64) -> bool {
        self.segments
            .iter()
            .any(|&(va, size, _)| addr >= va && addr < va + size)
    }

    /// The NUL-terminated string at virtual address `addr` (at most 4 KiB), if the file holds
    /// one there.
    pub fn c_string_at(&self, addr: u64) -> Option<&str> {
        let &(va, size, off) = self
            .segments
            .iter()
            .find(|&&(va, size, _)| addr >= va && addr < va + size)?;
        let start = usize::try_from(addr - va + off).ok()?;
        let end = usize::try_from(off + size).ok()?;
        let bytes = self.file.bytes().get(start..end.min(start + 4096))?;
        let nul = bytes.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&bytes[..nul]).ok()
    }

    /// The name of the function at `addr`, if a symbol names it.
    pub fn name_at(&self, addr: u64) -> Option<&str> {
        self.names
            .binary_search_by_key(&addr, |n| n.0)
            .ok()
            .map(|i| self.names[i].1.as_str())
    }

    fn read_symbols(&mut self, elf: &Elf) {
        let mut names: HashMap<u64, String> = HashMap::new();
        let mut add = |addr: u64, name: &str, global: bool| {
            if name.is_empty() {
                return;
            }
            // One name per address: prefer a global one without leading underscores (chown
            // over __chown), then the shorter.
            let better = |old: &str| {
                let rank = |n: &str| (n.starts_with('_'), n.len());
                global && rank(name) < rank(old)
            };
            match names.get(&addr) {
                Some(old) if !better(old) => {}
                _ => {
                    names.insert(addr, name.to_string());
                }
            }
        };
        let is_func = |s: &sym::Sym| {
            matches!(s.st_type(), sym::STT_FUNC | sym::STT_GNU_IFUNC) && s.st_shndx != 0
        };
        for s in elf.syms.iter().filter(is_func) {
            if let Some(n) = elf.strtab.get_at(s.st_name) {
                add(s.st_value, n, s.st_bind() != sym::STB_LOCAL);
            }
        }
        self.data_symbols = elf
            .syms
            .iter()
            .chain(elf.dynsyms.iter())
            .filter(|s| s.st_type() == sym::STT_OBJECT && s.st_shndx != 0 && s.st_value != 0)
            .map(|s| s.st_value)
            .collect();
        self.data_symbols.sort_unstable();
        self.data_symbols.dedup();
        for s in elf.dynsyms.iter().filter(is_func) {
            let Some(n) = elf.dynstrtab.get_at(s.st_name) else {
                continue;
            };
            add(s.st_value, n, true);
            let visible = matches!(
                s.st_bind(),
                sym::STB_GLOBAL | sym::STB_WEAK | sym::STB_GNU_UNIQUE
            ) && matches!(s.st_visibility(), sym::STV_DEFAULT | sym::STV_PROTECTED);
            if visible {
                let v = self.exports.entry(n.to_string()).or_default();
                if !v.contains(&s.st_value) {
                    v.push(s.st_value);
                }
            }
        }
        self.names = names.into_iter().collect();
        self.names.sort();
    }

    fn read_relocations(&mut self, elf: &Elf) {
        let sym_name = |i: usize| -> Option<String> {
            let s = elf.dynsyms.get(i)?;
            let n = elf.dynstrtab.get_at(s.st_name)?;
            (!n.is_empty() && s.st_type() != sym::STT_OBJECT).then(|| n.to_string())
        };
        for r in elf.dynrelas.iter().chain(elf.pltrelocs.iter()) {
            let addend = r.r_addend.unwrap_or(0) as u64;
            let target = match r.r_type {
                R_RELATIVE if self.is_code(addend) => Target::Local(addend),
                R_RELATIVE if self.is_mapped(addend) => {
                    self.data_pointers.push((r.r_offset, addend));
                    continue;
                }
                R_IRELATIVE => {
                    self.entries.push((addend, "ifunc resolver".into()));
                    continue;
                }
                R_64 | R_GLOB_DAT | R_JUMP_SLOT if r.r_sym != 0 => match sym_name(r.r_sym) {
                    Some(n) => Target::Import(n),
                    None => continue,
                },
                _ => continue,
            };
            if r.r_type == R_GLOB_DAT || r.r_type == R_JUMP_SLOT || r.r_type == R_RELATIVE {
                self.got.insert(r.r_offset, target.clone());
            }
            // A PLT slot only serves calls through its stub; every other slot or word holds
            // an address the program can pass around.
            if r.r_type != R_JUMP_SLOT {
                self.data_refs.push((r.r_offset, target));
            }
        }
    }

    /// DT_RELR (packed relative relocations, as in Debian 12's glibc): the words they name
    /// hold their target in the file.
    fn read_relr(&mut self, elf: &Elf, data: &[u8]) {
        const DT_RELRSZ: u64 = 35;
        const DT_RELR: u64 = 36;
        let Some(dynamic) = &elf.dynamic else {
            return;
        };
        let dt = |tag| dynamic_value(dynamic, tag);
        let (Some(at), Some(size)) = (dt(DT_RELR), dt(DT_RELRSZ)) else {
            return;
        };
        let mut places = Vec::new();
        let mut base = 0u64;
        for k in 0..size / 8 {
            let Some(entry) = read_word(elf, data, at + k * 8) else {
                return;
            };
            if entry & 1 == 0 {
                places.push(entry);
                base = entry + 8;
            } else {
                for bit in 1..64 {
                    if entry >> bit & 1 == 1 {
                        places.push(base + (bit - 1) * 8);
                    }
                }
                base += 63 * 8;
            }
        }
        for place in places {
            match read_word(elf, data, place) {
                Some(v) if self.is_code(v) => {
                    self.got.insert(place, Target::Local(v));
                    self.data_refs.push((place, Target::Local(v)));
                }
                Some(v) if self.is_mapped(v) => self.data_pointers.push((place, v)),
                _ => {}
            }
        }
    }

    fn read_entries(&mut self, elf: &Elf, data: &[u8]) {
        if elf.header.e_entry != 0 && self.is_code(elf.header.e_entry) {
            self.entries
                .push((elf.header.e_entry, "entry point".into()));
        }
        let Some(dynamic) = &elf.dynamic else {
            return;
        };
        let info = &dynamic.info;
        for (addr, what) in [(info.init, "DT_INIT"), (info.fini, "DT_FINI")] {
            if addr != 0 {
                self.entries.push((addr, what.into()));
            }
        }
        let mut arrays = vec![
            (info.init_array, info.init_arraysz, "init_array"),
            (info.fini_array, info.fini_arraysz, "fini_array"),
        ];
        let dt = |tag| dynamic_value(dynamic, tag);
        if let (Some(a), Some(sz)) = (
            dt(goblin::elf::dynamic::DT_PREINIT_ARRAY),
            dt(goblin::elf::dynamic::DT_PREINIT_ARRAYSZ),
        ) {
            arrays.push((a, sz as usize, "preinit_array"));
        }
        let relative: HashMap<u64, u64> = elf
            .dynrelas
            .iter()
            .filter(|r| r.r_type == R_RELATIVE)
            .map(|r| (r.r_offset, r.r_addend.unwrap_or(0) as u64))
            .collect();
        for (start, size, what) in arrays {
            for slot in (start..start + size as u64).step_by(8) {
                let addr = relative
                    .get(&slot)
                    .copied()
                    .or_else(|| read_word(elf, data, slot));
                if let Some(a) = addr.filter(|&a| self.is_code(a)) {
                    self.entries.push((a, what.into()));
                }
            }
        }
    }

    /// In a fixed-address object, data holds code addresses as plain words.
    fn scan_data_words(&mut self, elf: &Elf, data: &[u8]) {
        for sh in &elf.section_headers {
            let alloc = sh.sh_flags & u64::from(section_header::SHF_ALLOC) != 0;
            let exec = sh.sh_flags & u64::from(section_header::SHF_EXECINSTR) != 0;
            if !alloc || exec || sh.sh_type != section_header::SHT_PROGBITS {
                continue;
            }
            let Some(bytes) = data.get(sh.file_range().unwrap_or_default()) else {
                continue;
            };
            for (i, w) in bytes.chunks_exact(8).enumerate() {
                let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
                let place = sh.sh_addr + 8 * i as u64;
                if self.is_code(v) {
                    self.data_refs.push((place, Target::Local(v)));
                } else if v != 0 && self.is_mapped(v) {
                    self.data_pointers.push((place, v));
                }
            }
        }
    }
}

const R_64: u32 = R_X86_64_64;

/// The executable sections' addresses and places in the file (the executable segments' when
/// there are no section headers).
fn code_ranges(elf: &Elf, data: &[u8]) -> Vec<(u64, Range<usize>)> {
    let in_file = |r: Range<usize>| data.get(r.clone()).map(|_| r);
    let mut code: Vec<(u64, Range<usize>)> = elf
        .section_headers
        .iter()
        .filter(|sh| {
            sh.sh_type == section_header::SHT_PROGBITS
                && sh.sh_flags & u64::from(section_header::SHF_EXECINSTR) != 0
        })
        .filter_map(|sh| Some((sh.sh_addr, in_file(sh.file_range()?)?)))
        .collect();
    if code.is_empty() {
        // No section headers (stripped hard): fall back to executable segments.
        code = elf
            .program_headers
            .iter()
            .filter(|ph| {
                ph.p_type == program_header::PT_LOAD && ph.p_flags & program_header::PF_X != 0
            })
            .filter_map(|ph| Some((ph.p_vaddr, in_file(ph.file_range())?)))
            .collect();
    }
    code.sort_by_key(|c| c.0);
    code
}

fn split_paths(list: &[&str]) -> Vec<String> {
    list.iter()
        .flat_map(|p| p.split(':'))
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// The 8-byte word at virtual address `addr`, through the loadable segments.
fn read_word(elf: &Elf, data: &[u8], addr: u64) -> Option<u64> {
    let ph = elf.program_headers.iter().find(|p| {
        p.p_type == program_header::PT_LOAD
            && addr >= p.p_vaddr
            && addr + 8 <= p.p_vaddr + p.p_filesz
    })?;
    let off = (addr - ph.p_vaddr + ph.p_offset) as usize;
    Some(u64::from_le_bytes(data.get(off..off + 8)?.try_into().ok()?))
}

/// The value of the first dynamic-section entry with `tag`.
fn dynamic_value(dynamic: &goblin::elf::Dynamic, tag: u64) -> Option<u64> {
    dynamic
        .dyns
        .iter()
        .find(|d| d.d_tag == tag)
        .map(|d| d.d_val)
}
